"""placeholder"""
class SafetensorsFile: pass
def open_folder(p): pass
