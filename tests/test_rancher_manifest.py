"""
Tests for L{scaleagent.rancher.manifest} against the import manifests real
Rancher 2.11, 2.12 and 2.14 served (token replaced by a test value).
"""

import base64
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.rancher.manifest import ManifestError, parse_import_manifest

FIXTURES = Path(__file__).parent / "fixtures" / "rancher"
TEST_TOKEN = "bcdfghjklmnpqrstvwxz2456789bcdfghjklmnpqrstvwxz245678b"


def manifest(version: str) -> str:
    return (FIXTURES / f"import-manifest-v{version}.yaml").read_text()


class ParseTests(SynchronousTestCase):
    def test_rancher_2_14(self) -> None:
        settings = parse_import_manifest(manifest("2.14.4"))
        self.assertEqual(settings.server_url, "https://127.0.0.1:10443")
        self.assertEqual(settings.token, TEST_TOKEN)
        self.assertEqual(settings.namespace, "")
        self.assertEqual(
            settings.ca_checksum,
            "ff68d222c91402c337a41ab48e41405c830601599f6db1d56776c7d1234978c8",
        )
        self.assertTrue(settings.strict_verify)
        self.assertEqual(settings.server_version, "v2.14.4")
        self.assertEqual(settings.credential_name, "cattle-credentials-b17e9d492b")
        self.assertEqual(settings.agent_image, "rancher/rancher-agent:v2.14.4")
        self.assertEqual(settings.features, {})
        kinds = [obj["kind"] for obj in settings.objects]
        self.assertEqual(kinds.count("Deployment"), 1)
        self.assertIn("Service", kinds)

    def test_every_recorded_version(self) -> None:
        for version in ["2.11.16", "2.12.12", "2.14.4"]:
            settings = parse_import_manifest(manifest(version))
            self.assertEqual(settings.token, TEST_TOKEN, version)
            self.assertTrue(settings.server_url.startswith("https://"), version)
            self.assertTrue(settings.credential_name.startswith("cattle-credentials-"), version)

    def test_token_not_in_repr(self) -> None:
        """The settings can be logged without leaking the token."""
        settings = parse_import_manifest(manifest("2.14.4"))
        self.assertNotIn(TEST_TOKEN, repr(settings))

    def test_features_of_redeployed_agent(self) -> None:
        text = manifest("2.14.4").replace(
            "          - name: CATTLE_SERVER\n",
            "          - name: CATTLE_FEATURES\n"
            '            value: "fleet=false,multi-cluster-management-agent=true"\n'
            "          - name: CATTLE_SERVER\n",
        )
        settings = parse_import_manifest(text)
        self.assertEqual(
            settings.features, {"fleet": False, "multi-cluster-management-agent": True}
        )

    def test_secret_found_without_credential_name(self) -> None:
        """Older manifests do not name the Secret in the environment."""
        text = manifest("2.14.4").replace("CATTLE_CREDENTIAL_NAME", "SOMETHING_ELSE")
        self.assertEqual(parse_import_manifest(text).token, TEST_TOKEN)


class ErrorTests(SynchronousTestCase):
    def test_not_yaml(self) -> None:
        error = self.assertRaises(ManifestError, parse_import_manifest, "a: [b")
        self.assertIn("not valid YAML", str(error))

    def test_not_yaml_does_not_quote_the_token(self) -> None:
        """
        PyYAML quotes the text around the problem; in a cut-off manifest
        that is the credentials Secret's token.
        """
        token_b64 = base64.b64encode(TEST_TOKEN.encode()).decode()
        text = manifest("2.14.4")
        self.assertIn(f'token: "{token_b64}"', text)
        # Cut before the closing quote.
        cut = text[: text.index(token_b64) + len(token_b64)]
        error = self.assertRaises(ManifestError, parse_import_manifest, cut)
        self.assertIn("not valid YAML", str(error))
        self.assertIn("line ", str(error))
        for secret in (TEST_TOKEN, token_b64, token_b64[:16]):
            self.assertNotIn(secret, str(error))

    def test_html_error_page(self) -> None:
        """What a proxy or a wrong URL might serve instead."""
        self.assertRaises(ManifestError, parse_import_manifest, "<html><body>oops</body></html>")

    def test_no_deployment(self) -> None:
        text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cattle-system\n"
        error = self.assertRaises(ManifestError, parse_import_manifest, text)
        self.assertIn("cattle-cluster-agent", str(error))

    def test_bad_token_encoding(self) -> None:
        token_b64 = base64.b64encode(TEST_TOKEN.encode()).decode()
        text = manifest("2.14.4").replace(token_b64, "%%%not-base64%%%")
        error = self.assertRaises(ManifestError, parse_import_manifest, text)
        self.assertIn("token", str(error))
        self.assertNotIn(TEST_TOKEN, str(error))
