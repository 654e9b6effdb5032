"""Installable package, configured from nbdev's settings.ini (the single source of metadata)."""
from configparser import ConfigParser
import shlex

import shutil
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

class build_py_with_experiment(build_py):
    "Ship nbs/experiment.ipynb (papermill's notebook, whose source lives in nbs/) as relgraph/nbs/experiment.ipynb."
    def run(self):
        super().run()
        dst = Path(self.build_lib) / "relgraph" / "nbs"
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).parent / "nbs" / "experiment.ipynb", dst / "experiment.ipynb")


cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["Planning", "Pre-Alpha", "Alpha", "Beta", "Production/Stable", "Mature", "Inactive"]
py_versions = "3.10 3.11 3.12 3.13".split()

requirements = shlex.split(cfg.get("requirements", ""))
dev_requirements = shlex.split(cfg.get("dev_requirements", ""))
docs_requirements = shlex.split(cfg.get("docs_requirements", ""))
lic = licenses[cfg["license"]]
min_python = cfg["min_python"]

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    license=lic[0],
    classifiers=[
        "Development Status :: " + cfg["status"] + " - " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
        "License :: " + lic[1],
    ] + ["Programming Language :: Python :: " + v for v in py_versions[py_versions.index(min_python):]],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=[cfg["lib_path"], cfg["lib_path"] + ".*"]),
    include_package_data=True,
    package_data={cfg["lib_path"]: ["data/*"]},
    install_requires=requirements,
    extras_require={"dev": dev_requirements, "docs": docs_requirements},
    python_requires=">=" + min_python,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    cmdclass={"build_py": build_py_with_experiment},
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d'],
    },
    author=cfg["author"],
    author_email=cfg["author_email"],
    description=cfg["description"],
    keywords=cfg["keywords"],
)
