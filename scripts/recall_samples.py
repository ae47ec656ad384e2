"""Draw a few `recall` canvases with their pair counts and labels: docs/recall.png (the README's picture).

    .venv/bin/python scripts/recall_samples.py [OUT.png]
"""

import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

from sola_search.proxies.recall import generate, parse_recall

out = sys.argv[1] if len(sys.argv) > 1 else "docs/recall.png"
spec = parse_recall("recall:pairs=2-24")
pairs, labels = torch.tensor([2, 4, 8, 12, 16, 24]), torch.tensor([3, 7, 0, 5, 9, 1])
x = generate(spec, 64, pairs, labels, torch.Generator().manual_seed(0))
scale, pad, text = 3, 6, 16
tile = 64 * scale
img = Image.new("RGB", (len(x) * (tile + pad) + pad, tile + 2 * pad + text), (128, 128, 128))
draw = ImageDraw.Draw(img)
for i, canvas in enumerate(x):
    im = Image.fromarray(canvas.permute(1, 2, 0).numpy().astype(np.uint8)).resize((tile, tile), Image.NEAREST)
    left = pad + i * (tile + pad)
    img.paste(im, (left, pad))
    draw.text((left, tile + pad + 2), f"P={pairs[i].item()}  label {labels[i].item()}", fill=(255, 255, 255))
img.save(out)
print(f"wrote {out}")
