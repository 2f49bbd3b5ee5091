"""The single image loader: formats, modes, OpenCV-identical grayscale, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import aedr
from aedr.images import (
    EmptyImageFileError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    list_image_files,
    load_image,
)
from aedr.scoring import load_images


def photo(size=(48, 40)) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()[100 : 100 + size[1], 150 : 150 + size[0]])


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp", ".tif"])
def test_grayscale_is_what_opencv_reads(tmp_path, suffix):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is in the test extra")
    path = tmp_path / f"img{suffix}"
    photo().save(path, **({"quality": 90} if suffix == ".jpg" else {}))
    loaded = load_image(path)
    expected = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(loaded.gray, expected)
    np.testing.assert_array_equal(loaded.rgb, cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    assert aedr.homogeneity(path) == pytest.approx(aedr.homogeneity(expected), abs=1e-15)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16"])
def test_png_modes_become_rgb(tmp_path, mode):
    base = photo()
    if mode == "I;16":
        g = np.asarray(base.convert("L"), dtype=np.uint16) * 257 + 3
        img = Image.fromarray(g)
        assert img.mode.startswith("I")
        expected = np.repeat((g >> 8).astype(np.uint8)[..., None], 3, axis=2)
    elif mode == "P":
        img = base.convert("P")
        expected = np.asarray(img.convert("RGB"))
    else:
        img = base.convert(mode)
        expected = np.asarray(img.convert("RGB"))
    path = tmp_path / "img.png"
    img.save(path)
    loaded = load_image(path)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (40, 48, 3)
    np.testing.assert_array_equal(loaded.rgb, expected)
    cv2 = pytest.importorskip("cv2")
    np.testing.assert_array_equal(loaded.gray, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def test_cmyk_jpeg_and_tiff(tmp_path):
    for name in ("img.jpg", "img.tif"):
        path = tmp_path / name
        photo().convert("CMYK").save(path)
        loaded = load_image(path)
        assert loaded.rgb.shape == (40, 48, 3)


def test_exif_orientation_is_not_applied_unless_asked(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    photo((48, 40)).save(path, exif=exif)
    assert load_image(path).rgb.shape[:2] == (40, 48)
    assert load_image(path, exif_transpose=True).rgb.shape[:2] == (48, 40)


def test_bad_files_get_specific_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    good = tmp_path / "good.png"
    photo().save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    jpeg = tmp_path / "good.jpg"
    photo().save(jpeg)
    truncated_jpeg = tmp_path / "truncated.jpg"
    truncated_jpeg.write_bytes(jpeg.read_bytes()[:300])
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)

    with pytest.raises(EmptyImageFileError):
        load_image(empty)
    with pytest.raises(NotAnImageError):
        load_image(text)
    with pytest.raises(NotAnImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(TruncatedImageError):
        load_image(truncated)
    with pytest.raises(TruncatedImageError):
        load_image(truncated_jpeg)
    with pytest.raises(ImageTooSmallError):
        load_image(tiny)
    with pytest.raises(ImageTooLargeError, match="limit 100"):
        load_image(good, max_pixels=100)

    result = load_images([empty, text, good, truncated, truncated_jpeg, tiny])
    assert [im.path.name for im in result.images] == ["good.png"]
    assert len(result.skipped) == 5 and all(s.error for s in result.skipped)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (10000, 10000)).save(path, optimize=True)
    with pytest.raises(ImageTooLargeError):
        load_image(path)  # 1e8 pixels > the default 8192^2 limit, refused before decoding


def test_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        list_image_files([tmp_path / "empty"])
    for name in ("b.png", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_image_files([tmp_path])] == ["a.jpg", "b.png"]


def test_in_memory_and_file_images_share_a_content_hash(tmp_path):
    path = tmp_path / "x.png"
    photo().save(path)
    from_file = load_image(path)
    in_memory = aedr.LoadedImage.from_pil(photo(), "memory")
    assert from_file.content_hash == in_memory.content_hash
    np.testing.assert_array_equal(from_file.gray, in_memory.gray)  # PNG's grayscale rule for arrays


def test_a_link_back_up_the_tree_is_not_followed(tmp_path):
    """A recursive walk does not enter links to folders, so a link to a parent cannot loop, and the
    non-streamed and streamed commands see the same files."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "sub" / "b.png").symlink_to(tmp_path / "sub" / "a.png")  # a link to a file is a file
    assert [p.relative_to(tmp_path).as_posix() for p in list_image_files([tmp_path], recursive=True)] == ["sub/a.png", "sub/b.png"]
