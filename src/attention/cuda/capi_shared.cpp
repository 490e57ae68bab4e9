// Translation unit of the shared library; the code lives in sparvar_attention_cuda (linked whole).
