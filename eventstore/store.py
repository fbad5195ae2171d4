def default_path():
    return ":memory:"
