"""Model file readers: GGUF and Hugging Face safetensors folders, both zero-copy over mmap."""
from .gguf import GGUFFile, TensorInfo
from .gguf_writer import RawTensor, Typed, write_gguf
from .safetensors import HFFolder, SafetensorsFile, gguf_name, open_folder

__all__ = ["GGUFFile", "HFFolder", "RawTensor", "SafetensorsFile", "TensorInfo", "Typed", "gguf_name",
           "open_folder", "write_gguf"]
