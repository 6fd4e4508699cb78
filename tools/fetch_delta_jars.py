"""Fetch the Delta Lake JARs that match the installed delta-spark and pyspark, and the
PostgreSQL JDBC driver of the PostgreSQL profile's Spark catalog, once.

Spark's own ``spark.jars.packages`` resolves from Maven Central at every session start; this
script resolves the same artifact once, with Maven, into a git-ignored cache inside the
repository, so every later session, spark-submit, test and CI job runs offline.

The dependency list is read from Delta's POM (``mvn dependency:copy-dependencies``) rather
than hard-coded. Artifacts that pyspark already ships (Scala, Jackson, Parquet, Hadoop...)
are left out so the driver never sees two versions of one library.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache"
MANIFEST = "jars.txt"

POM_TEMPLATE = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>omnichannel.local</groupId>
  <artifactId>delta-jars</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.delta</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""

# The artifact name is everything before the first "-<digit>" (the version and classifier).
_JAR_NAME = re.compile(r"^(?P<artifact>.+?)-\d.*\.jar$")


def delta_coordinates() -> tuple[str, str]:
    """Return the Maven artifact and version matching the installed delta-spark and pyspark."""
    import pyspark

    delta_version = importlib.metadata.version("delta-spark")
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"delta-spark_{spark_minor}_2.13", delta_version


def artifact_name(jar: str) -> str:
    """``jackson-core-2.21.2.jar`` -> ``jackson-core``."""
    match = _JAR_NAME.match(jar)
    if not match:
        raise ValueError(f"cannot read an artifact name from jar file name {jar!r}")
    return match.group("artifact")


def pyspark_artifacts() -> set[str]:
    import pyspark

    jars_dir = Path(pyspark.__file__).parent / "jars"
    return {artifact_name(jar.name) for jar in jars_dir.glob("*.jar")}


def jar_dir(cache: Path) -> Path:
    artifact, version = delta_coordinates()
    return cache / "jars" / f"{artifact}-{version}"


def fetch(cache: Path) -> Path:
    """Resolve Delta with Maven into ``cache`` and write the manifest; return the jar folder."""
    target = jar_dir(cache)
    if (target / MANIFEST).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("Maven ('mvn') is not on PATH: it is needed once to fetch the Delta JARs")
    artifact, version = delta_coordinates()
    with tempfile.TemporaryDirectory() as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(POM_TEMPLATE.format(artifact=artifact, version=version))
        staging = Path(work) / "jars"
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            f"-Dmaven.repo.local={cache / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        print(f"Fetching io.delta:{artifact}:{version} and its dependencies with Maven")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit(
                f"Maven could not resolve io.delta:{artifact}:{version} (exit {result.returncode})"
            )
        shipped = pyspark_artifacts()
        target.mkdir(parents=True, exist_ok=True)
        kept = []
        for jar in sorted(staging.glob("*.jar")):
            if artifact_name(jar.name) in shipped:
                continue
            shutil.copy2(jar, target / jar.name)
            kept.append(jar.name)
    if not any(name.startswith(f"{artifact}-") for name in kept):
        raise SystemExit(f"Maven ran but {artifact}-{version}.jar is not among {kept}")
    (target / MANIFEST).write_text("\n".join(kept) + "\n")
    print(f"Delta JARs ({len(kept)}) cached in {target}")
    return target


def fetch_jdbc_driver(cache: Path) -> Path:
    """The PostgreSQL JDBC driver (one JAR, no dependencies at run time) in ``cache``: the
    Hive metastore client of the PostgreSQL profile connects with it."""
    from omni.sparkconf import JDBC_FOLDER, POSTGRESQL_JDBC

    group, artifact, version = POSTGRESQL_JDBC
    target = cache / "jars" / JDBC_FOLDER / f"{artifact}-{version}.jar"
    if target.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("Maven ('mvn') is not on PATH: it is needed once to fetch the JARs")
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-B",
        "-q",
        f"-Dmaven.repo.local={cache / 'm2'}",
        "dependency:copy",
        f"-Dartifact={group}:{artifact}:{version}",
        f"-DoutputDirectory={target.parent}",
    ]
    print(f"Fetching {group}:{artifact}:{version} with Maven")
    result = subprocess.run(command, capture_output=True, text=True, cwd=cache)
    if result.returncode != 0 or not target.exists():
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"Maven could not fetch {group}:{artifact}:{version}")
    print(f"PostgreSQL JDBC driver cached in {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    fetch(args.cache.resolve())
    fetch_jdbc_driver(args.cache.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
