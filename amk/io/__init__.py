"""Files amk creates (exclusive, unique, atomic: :mod:`amk.io.files`) and text it prints (passwords hidden,
control characters escaped: :mod:`amk.io.display`). Below every package but amk.core; imports only amk.core."""
