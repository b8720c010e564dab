"""
Tests for L{scaleagent.metrics}: the Prometheus text exposition format.
"""

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.metrics import Registry


class RegistryTests(SynchronousTestCase):
    def test_counter_with_labels(self) -> None:
        registry = Registry()
        requests = registry.counter(
            "scaleagent_api_requests_total", "API requests served.", ["verb", "code"]
        )
        requests.inc(verb="get", code="200")
        requests.inc(2, verb="watch", code="200")
        requests.inc(verb="get", code="200")
        self.assertEqual(requests.value(verb="get", code="200"), 2)
        self.assertEqual(
            registry.render().decode(),
            "# HELP scaleagent_api_requests_total API requests served.\n"
            "# TYPE scaleagent_api_requests_total counter\n"
            'scaleagent_api_requests_total{verb="get",code="200"} 2\n'
            'scaleagent_api_requests_total{verb="watch",code="200"} 2\n',
        )

    def test_collected_gauge(self) -> None:
        registry = Registry()
        states = {"active": 3, "error": 1}
        registry.gauge(
            "scaleagent_clusters",
            "Simulated clusters by state.",
            ["state"],
            collect=lambda: {(state,): count for state, count in states.items()},
        )
        states["error"] = 0
        text = registry.render().decode()
        self.assertIn('scaleagent_clusters{state="active"} 3\n', text)
        self.assertIn('scaleagent_clusters{state="error"} 0\n', text)

    def test_unlabelled_collected_gauge(self) -> None:
        registry = Registry()
        registry.gauge("scaleagent_streams_open", "Open tunnelled streams.", collect=lambda: 12)
        self.assertIn("scaleagent_streams_open 12\n", registry.render().decode())

    def test_collected_counter(self) -> None:
        registry = Registry()
        counts = [5]
        registry.counter(
            "scaleagent_inbound_deferred_messages_total", "Deferred.", collect=lambda: counts[0]
        )
        counts[0] = 7
        self.assertIn(
            "# TYPE scaleagent_inbound_deferred_messages_total counter\n"
            "scaleagent_inbound_deferred_messages_total 7\n",
            registry.render().decode(),
        )
        with self.assertRaises(ValueError):
            registry.counter("x_total", "labelled", ["kind"], collect=lambda: 1)

    def test_escaping(self) -> None:
        registry = Registry()
        gauge = registry.gauge("g", 'help with \\ and\nnewline', ["reason"])
        gauge.set(1.5, reason='quote " backslash \\ newline \n')
        text = registry.render().decode()
        self.assertIn("# HELP g help with \\\\ and\\nnewline\n", text)
        self.assertIn('g{reason="quote \\" backslash \\\\ newline \\n"} 1.5\n', text)

    def test_wrong_labels_rejected(self) -> None:
        registry = Registry()
        counter = registry.counter("c_total", "c", ["a"])
        self.assertRaises(ValueError, counter.inc, b="x")
        self.assertRaises(ValueError, counter.inc, -1, a="x")

    def test_duplicate_registration(self) -> None:
        registry = Registry()
        registry.counter("c_total", "c")
        self.assertRaises(ValueError, registry.counter, "c_total", "c")
