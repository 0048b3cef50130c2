"""modeling_gato: a Hugging Face-native implementation of DeepMind's Gato (Reed et al., 2022)."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

setup(
    name="modeling_gato",
    version="0.1.0",
    description="Gato: A Generalist Agent (Reed et al., 2022) for transformers, datasets and gymnasium",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_gato", "modeling_gato.*", "conversion", "conversion.*"]),
    package_data={"modeling_gato": ["assets/tokenizer/*.json"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.4",
        "transformers>=5.23,<6",
        "tokenizers>=0.21",
        "datasets>=3.0",
        "accelerate>=1.0",
        "safetensors>=0.4",
        "numpy>=1.24",
        "pillow>=10.0",
        "tqdm>=4.60",
        "matplotlib>=3.8",  # loss curves and evaluation charts
    ],
    extras_require={
        "envs": [
            "gymnasium>=1.0",
            "minigrid>=3.0",
            "metaworld>=3.0",
            "mujoco>=3.0",
            "stable-baselines3>=2.3",
        ],
        "convert": [
            "minari>=0.5",
            "h5py>=3.0",
        ],
        "dev": [
            "pytest>=8.0",
            "hypothesis>=6.100",  # tests/test_processor_properties.py
            # plain minari: the tests record their Minari datasets without `DataCollector`, whose `minari[create]`
            # extra pulls jax and jaxlib (tests/minari_testing.py)
            "minari>=0.5",
            "h5py>=3.0",
            "gymnasium>=1.0",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.0",
            "matplotlib>=3.8",
            "peft>=0.13",
            "ruff>=0.5",
            # tests/test_packaging.py builds the wheel offline (`pip wheel --no-build-isolation`) in this environment
            "setuptools>=70.1",
            "wheel>=0.43",
        ],
    },
    entry_points={"console_scripts": ["gato=modeling_gato.cli:main"]},
)
