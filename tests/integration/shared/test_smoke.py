from lepton.shared.registry import TableRegistry
def test_x(storage):
    r = TableRegistry(storage.tables)
    v = r.register_version("digits", "1.0.0", sha256="a"*64, size=3, blob_path="digits/1.0.0/model.onnx")
    print(v)
    v2 = r.transition("digits", "1.0.0", __import__("lepton.shared").shared.Stage.VALIDATING, reason="x", actor="t")
    print(v2, r.history("digits"))
