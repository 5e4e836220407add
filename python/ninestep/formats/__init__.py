"""Model file readers: GGUF and Hugging Face safetensors folders, both zero-copy over mmap."""
from .gguf import GGUFFile, TensorInfo
from .gguf_writer import Typed, write_gguf
from .safetensors import SafetensorsFile, open_folder

__all__ = ["GGUFFile", "SafetensorsFile", "TensorInfo", "Typed", "open_folder", "write_gguf"]
