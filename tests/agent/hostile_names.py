"""A tree of names every ext4 allows but that break naive code: a backslash in a file and a
folder name, a newline, bytes that are not UTF-8 (written as lone surrogates, the agent's
``surrogateescape`` form: ``"\\udcff"`` is the byte 0xff), a 255-byte name, and plain Unicode."""

LONG = "L" * 251 + ".txt"  # 255 bytes, ext4's limit

HOSTILE = {
    "/odd/back\\slash.txt": b"a backslash is a character on ext4\n",
    "/odd/dir\\with\\backslashes/inner.txt": b"inside a folder with backslashes\n",
    "/odd/new\nline.txt": b"a newline in the name\n",
    "/odd/bad\udcff\udcfename.txt": b"not UTF-8\n",
    "/odd/bad\udcffdir/x.txt": b"inside a folder that is not UTF-8\n",
    "/odd/" + LONG: b"a 255-byte name\n",
    "/odd/\u00fcn\u00ef \u20ac.txt": b"plain Unicode\n",
    "/plain.txt": b"nothing odd\n",
}
