"""The Databricks Runtime the job clusters run, in one place.

17.3 LTS: Apache Spark 4.0.0 on Python 3.12, supported until Oct 22, 2028 (the runtime release
table, https://learn.microsoft.com/azure/databricks/release-notes/runtime/). It is the LTS closest
to the Spark 4 semantics the local engines have (ANSI SQL on by default, Spark Connect), so the
parity suite compares like with like; 16.4 LTS would mean Spark 3.5 and ANSI off.

:data:`PREINSTALLED` pins what the runtime ships, for the libraries the wheel's dependency closure
can touch. Versions from databricks/environments `python/dbr/17.3.x-scala2.13/constraints.txt`;
the human-readable list is the "Installed Python libraries" table of the 17.3 LTS release notes
(https://learn.microsoft.com/azure/databricks/release-notes/runtime/17.3lts), against which these
pins were not re-checked here. The wheel must install
next to them without changing any (tests/artifacts/test_databricks_wheel.py).
"""

from __future__ import annotations

SPARK_VERSION_KEY = "17.3.x-scala2.13"  # the cluster `spark_version` ADF's linked service asks for
PYTHON_VERSION = "3.12"
SPARK_VERSION = "4.0.0"

PREINSTALLED: dict[str, str] = {
    "annotated-types": "0.7.0",
    "azure-core": "1.34.0",
    "azure-identity": "1.20.0",
    "azure-storage-blob": "12.23.0",
    "azure-storage-file-datalake": "12.17.0",
    "certifi": "2025.1.31",
    "cffi": "1.17.1",
    "charset-normalizer": "3.3.2",
    "cryptography": "43.0.3",
    "deprecated": "1.2.13",
    "googleapis-common-protos": "1.65.0",
    "grpcio": "1.67.0",
    "grpcio-status": "1.67.0",
    "idna": "3.7",
    "importlib-metadata": "6.6.0",
    "iniconfig": "1.1.1",
    "isodate": "0.6.1",
    "msal": "1.32.3",
    "msal-extensions": "1.3.1",
    "numpy": "2.1.3",
    "opentelemetry-api": "1.32.1",
    "opentelemetry-sdk": "1.32.1",
    "opentelemetry-semantic-conventions": "0.53b1",
    "packaging": "24.2",
    "pandas": "2.2.3",
    "pluggy": "1.5.0",
    "protobuf": "5.29.4",
    "psutil": "5.9.0",
    "pyarrow": "19.0.1",
    "pycparser": "2.21",
    "pydantic": "2.10.6",
    "pydantic-core": "2.27.2",
    "pyjwt": "2.10.1",
    "pytest": "8.3.5",
    "python-dateutil": "2.9.0.post0",
    "pytz": "2024.1",
    "requests": "2.32.3",
    "six": "1.16.0",
    "tenacity": "9.0.0",
    "typing-extensions": "4.12.2",
    "tzdata": "2024.1",
    "urllib3": "2.3.0",
    "wrapt": "1.17.0",
    "zipp": "3.21.0",
}


def constraints() -> list[str]:
    """The preinstalled libraries as pip constraints (``name==version``)."""
    return [f"{name}=={version}" for name, version in sorted(PREINSTALLED.items())]
