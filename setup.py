from glob import glob

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="scaleagent",
    version="0.1.0",
    description=(
        "Simulate thousands of imported Kubernetes clusters for a Rancher "
        "server from one Twisted process."
    ),
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/scaleagent_plugin.py"]},
    # The bundled cluster templates; scaleagent.template finds them here
    # when installed, or beside the package in a source checkout.
    data_files=[
        ("share/scaleagent/cluster_templates", glob("cluster_templates/*.yaml")),
    ],
    install_requires=[
        "Twisted[tls]>=23.10,<27",
        "autobahn[twisted]>=23.1,<27",
        "treq>=23.11,<27",
        "PyYAML>=6.0,<7",
        "klein>=23.5,<25",
        "service-identity>=23.1,<27",
        "pyOpenSSL>=23.2,<27",
        "cryptography>=41",
        # Kubernetes' own OpenAPI schemas (with the strategic-merge patch
        # metadata) for /openapi/v2, /openapi/v3 and patch merge keys.
        "kubernetes-validate>=1.28,<2",
    ],
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Distributed Computing",
    ],
)
