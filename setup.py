"""The one thing pyproject.toml cannot say: the packages, found rather than listed.

``package-dir`` (pyproject.toml) maps ``nin`` onto common/ and ``nin.frameworks`` onto
frameworks/; every sub-package of frameworks/ (a backend: ``frameworks/<name>/__init__.py``) is
``nin.frameworks.<name>``, so adding a backend folder needs no edit here or in pyproject.toml.
"""

from setuptools import find_packages, setup


def packages() -> list[str]:
    """``nin``, ``nin.frameworks`` and every package under frameworks/, by its import name."""
    return ["nin", "nin.frameworks", *(f"nin.frameworks.{name}" for name in sorted(find_packages("frameworks")))]


if __name__ == "__main__":
    setup(packages=packages())
