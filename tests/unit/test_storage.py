import pytest

from core.storage import LocalStorage


def test_put_is_readable_and_overwrites(tmp_path):
    st = LocalStorage(tmp_path)
    st.put("t/j/0.png", b"one")
    st.put("t/j/0.png", b"two")
    assert st.path("t/j/0.png").read_bytes() == b"two"
    assert st.exists("t/j/0.png")
    assert not list(st.path("t/j/0.png").parent.glob(".tmp-*"))


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../x", ""])
def test_keys_cannot_leave_the_root(tmp_path, key):
    st = LocalStorage(tmp_path)
    with pytest.raises(ValueError):
        st.path(key)
    assert not st.exists(key)


def test_delete_prefix_removes_a_jobs_files(tmp_path):
    st = LocalStorage(tmp_path)
    st.put("t/j1/0.png", b"a")
    st.put("t/j1/1.png", b"b")
    st.put("t/j2/0.png", b"c")
    st.delete_prefix("t/j1")
    assert not st.exists("t/j1/0.png") and not st.exists("t/j1/1.png")
    assert st.exists("t/j2/0.png")
    st.delete_prefix("t/j1")  # again: nothing to do, no error
