"""Put the repository root on sys.path: like CoOp, the root is the working directory."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
