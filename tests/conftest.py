import os
import sys

# make `tests.onnx_check` importable whatever the rootdir
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
