"""Installs the TouchASP packages and the `touchasp` command. Requirements are pinned to the versions verified in
shared/STACK.md; torch is pinned exactly so pip takes the local CPU wheel instead of a multi-GB CUDA build."""

from pathlib import Path

from setuptools import find_packages, setup

requirements = [
    line.split("#")[0].strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="touchasp",
    version="0.1.0",
    description="Elastic automatic speech perception: one eMoE encoder-decoder for ASR, LID, emotion, gender and events",
    long_description=Path(__file__).with_name("README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_touchasp*", "processing*", "training*", "hub_cards*", "demo*"]),
    # Card templates and the evaluate metric scripts (loaded by path, so not packages) ship as data.
    package_data={"hub_cards": ["*.md"], "training": ["metrics/*/*.py", "event_mapping.json"]},
    py_modules=["touchasp"],
    install_requires=requirements,
    extras_require={"test": ["pytest==9.2.0"]},
    entry_points={"console_scripts": ["touchasp=touchasp:main"]},
)
