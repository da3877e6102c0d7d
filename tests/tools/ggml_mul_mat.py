# ggml mul_mat through the CPU backend: W (type, rows x cols bytes from file), X f32 (n x cols) -> out f32 (n x rows)
import ctypes, os, sys, importlib.util, numpy as np
LIB = os.path.join(os.path.dirname(importlib.util.find_spec("llama_cpp").origin), "lib")
base = ctypes.CDLL(os.path.join(LIB, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(os.path.join(LIB, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
class P(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]
base.ggml_init.restype = ctypes.c_void_p; base.ggml_init.argtypes = [P]
base.ggml_new_tensor_2d.restype = ctypes.c_void_p; base.ggml_new_tensor_2d.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
base.ggml_mul_mat.restype = ctypes.c_void_p; base.ggml_mul_mat.argtypes = [ctypes.c_void_p]*3
base.ggml_new_graph.restype = ctypes.c_void_p; base.ggml_new_graph.argtypes = [ctypes.c_void_p]
base.ggml_build_forward_expand.argtypes = [ctypes.c_void_p]*2
base.ggml_get_data.restype = ctypes.c_void_p; base.ggml_get_data.argtypes = [ctypes.c_void_p]
base.ggml_nbytes.restype = ctypes.c_size_t; base.ggml_nbytes.argtypes = [ctypes.c_void_p]
cpu.ggml_graph_compute_with_ctx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
cpu.ggml_cpu_init()
ty, rows, cols, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
w = open(sys.argv[5], "rb").read(); x = open(sys.argv[6], "rb").read()
ctx = base.ggml_init(P(256 << 20, None, False))
W = base.ggml_new_tensor_2d(ctx, ty, cols, rows); X = base.ggml_new_tensor_2d(ctx, 0, cols, n)
assert base.ggml_nbytes(W) == len(w) and base.ggml_nbytes(X) == len(x)
ctypes.memmove(base.ggml_get_data(W), w, len(w)); ctypes.memmove(base.ggml_get_data(X), x, len(x))
Y = base.ggml_mul_mat(ctx, W, X); g = base.ggml_new_graph(ctx); base.ggml_build_forward_expand(g, Y)
cpu.ggml_graph_compute_with_ctx(ctx, g, int(sys.argv[8]) if len(sys.argv) > 8 else 1)
out = ctypes.string_at(base.ggml_get_data(Y), n * rows * 4)
open(sys.argv[7], "wb").write(out)
