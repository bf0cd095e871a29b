"""Fetching a PyPI GGUF: transformers' three reads of the file share one parsed reader."""

import gguf

from lorp.model.fetch import one_gguf_parse


def test_readers_of_one_file_are_built_once_inside_the_block(monkeypatch):
    built = []
    monkeypatch.setattr(gguf, "GGUFReader", lambda path, *args, **kwargs: built.append(path) or object())
    plain = gguf.GGUFReader
    with one_gguf_parse():
        first, again, other = gguf.GGUFReader("a.gguf"), gguf.GGUFReader("a.gguf"), gguf.GGUFReader("b.gguf")
    assert first is again and first is not other and built == ["a.gguf", "b.gguf"]
    assert gguf.GGUFReader is plain  # restored: a later fetch parses its file afresh
    gguf.GGUFReader("a.gguf")
    assert built == ["a.gguf", "b.gguf", "a.gguf"]
