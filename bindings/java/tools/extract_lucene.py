"""Builds a Lucene-only jar out of the Anserini fat jar inside the pyserini sdist.

usage: extract_lucene.py SDIST.tar.gz OUT.jar

Keeps org/apache/lucene/** (the base, Java 11 class files; the fat jar's META-INF/versions/**
copies are left out, so the result is a plain, non-multi-release jar) and Lucene's own
META-INF/services files, with every provider line that names a class outside org.apache.lucene
removed (Anserini registers its own codecs there, compiled for Java 21 and absent from the
result). Writes OUT.jar atomically.
"""
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile

FATJAR_SUFFIX = "pyserini/resources/jars/anserini-1.7.1-fatjar.jar"


def main(sdist: str, out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fat = os.path.join(tmp, "fat.jar")
        with tarfile.open(sdist, "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(FATJAR_SUFFIX)), None)
            if member is None:
                sys.exit(f"{sdist}: no member ending in {FATJAR_SUFFIX}")
            with tar.extractfile(member) as src, open(fat, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        part = out + ".part"
        classes = services = dropped = 0
        with zipfile.ZipFile(fat) as zin, zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zout:
            zout.writestr("META-INF/MANIFEST.MF",
                          "Manifest-Version: 1.0\r\nCreated-By: rrra bindings/java/tools/extract_lucene.py\r\n"
                          f"X-Source: {FATJAR_SUFFIX}\r\n\r\n")
            for info in zin.infolist():
                name = info.filename
                if name.endswith("/"):
                    continue
                if name.startswith("org/apache/lucene/"):
                    zout.writestr(name, zin.read(name))
                    classes += 1
                elif name.startswith("META-INF/services/org.apache.lucene."):
                    lines = zin.read(name).decode("utf-8").splitlines()
                    keep = []
                    for line in lines:
                        entry = line.split("#", 1)[0].strip()
                        if entry and not entry.startswith("org.apache.lucene."):
                            dropped += 1
                            continue
                        keep.append(line)
                    zout.writestr(name, "\n".join(keep) + "\n")
                    services += 1
        if classes < 1000:
            sys.exit(f"only {classes} Lucene entries found in the fat jar; not the expected Anserini jar")
        os.replace(part, out)
        print(f"lucene jar: {classes} entries, {services} service files, {dropped} foreign providers dropped -> {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
