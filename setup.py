"""Install the TaskRes benchmark's dependencies.

The repository root is the working directory (like CoOp): ``datasets`` and ``trainers`` are not
installed as top-level site-packages, because a top-level ``datasets`` would shadow Hugging Face's.
Only ``engine`` is installed as a package, so ``import engine`` works from anywhere.
"""
from setuptools import find_packages, setup

setup(
    name="taskres-bench",
    version="0.1.0",
    description="Task Residual tuning (TaskRes, CVPR 2023) for CLIP with its few-shot baselines",
    python_requires=">=3.9",
    packages=find_packages(include=["engine", "engine.*"]),
    install_requires=[
        # The range CI tests at both ends (.ci/run): torch 2.1.2 + torchvision 0.16.2 + open_clip 2.26.1
        # (.ci/oldest.txt; torch < 2.3 needs numpy < 2) and torch 2.14.1 + torchvision 0.29.1 + open_clip 3.3.
        # open_clip >= 2.26: its text tower is batch-first (CoOp's prompt learner relies on that).
        "torch>=2.1,<2.15",
        "torchvision>=0.16,<0.30",
        "open_clip_torch>=2.26,<4",
        "yacs>=0.1.8,<0.2",
        "gdown>=4.7,<7",
        "tqdm>=4.60,<5",
        "numpy>=1.23,<3",
        "Pillow>=9,<13",
        "scikit-learn>=1.2,<2",
        "scipy>=1.9,<2",
        "matplotlib>=3.6,<4",
        "tensorboard>=2.12,<3",
        "submitit>=1.5,<2",
        "flufl.lock>=8,<11",
    ],
    extras_require={"test": ["pytest>=7,<10"], "dev": ["pytest>=7,<10", "ruff>=0.5"]},
)
