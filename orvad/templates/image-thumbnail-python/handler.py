"""An image thumbnail: POST an image (PNG, JPEG, GIF, WebP, ...) and get it back scaled down to fit a square,
keeping its proportions. Uses Pillow, installed at build time from requirements.txt.

    curl -s --data-binary @photo.jpg '.../fn/NAME?size=200&format=jpeg' -o thumb.jpg
    ?size=N      the longest side, 16..1024 (default 128)
    ?format=     png (default), jpeg or webp
"""

import base64
import io

from PIL import Image, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 40_000_000  # a bigger image is refused (a decompression bomb)
FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def reply(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": body}


def handler(event, context):
    if event["method"] != "POST":
        return reply(405, {"error": "POST the image as the request body"})
    data = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    try:
        size = int(event["query"].get("size", "128"))
    except ValueError:
        size = 0
    if not 16 <= size <= 1024:
        return reply(400, {"error": "size must be a whole number from 16 to 1024"})
    fmt = event["query"].get("format", "png").lower()
    if fmt not in FORMATS:
        return reply(400, {"error": f"format must be one of {', '.join(FORMATS)}"})
    try:
        with Image.open(io.BytesIO(data)) as image:
            original = image.size
            image.thumbnail((size, size))
            if fmt == "jpeg" and image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, FORMATS[fmt])
            thumb = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        return reply(422, {"error": f"not an image this function can read: {err}"})
    return {
        "statusCode": 200,
        "headers": {
            "content-type": f"image/{fmt}",
            "x-original-size": f"{original[0]}x{original[1]}",
            "x-thumbnail-size": f"{thumb[0]}x{thumb[1]}",
        },
        "body": out.getvalue(),
    }
