"""amk's contact with the operating system: files it creates (exclusive, unique, atomic:
:mod:`amk.io.files`), text it prints (passwords hidden, control characters escaped: :mod:`amk.io.display`)
and programs it runs (a process group killed, an exit described: :mod:`amk.io.processes`). Below every
package but amk.core; imports only amk.core."""
