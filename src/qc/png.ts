/**
 * A minimal PNG encoder (8-bit RGB or RGBA, non-interlaced): what the QC snapshots need and no
 * more. Pure: bytes in, bytes out. Each row is stored with filter type 1 (Sub), which suits the
 * flat areas and thin outlines of a CT snapshot, then the whole image is zlib-deflated.
 */
import { crc32, deflateSync } from 'node:zlib';

/** An 8-bit raster, rows top to bottom, `channels` bytes per pixel. */
export interface RasterImage {
  width: number;
  height: number;
  channels: 3 | 4;
  data: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const COLOR_TYPE = { 3: 2, 4: 6 } as const; // truecolour, truecolour with alpha

export function encodePng(img: RasterImage): Buffer {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError(`PNG size must be positive integers, got ${width}x${height}`);
  if (data.length !== width * height * channels) throw new RangeError(`PNG data holds ${data.length} bytes, expected ${width}x${height}x${channels} = ${width * height * channels}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_TYPE[channels];
  // compression 0, filter method 0, interlace 0: already zero
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(filterSub(img), { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

/** Scanlines with filter byte 1 (Sub): each byte minus the same channel of the pixel to its left. */
function filterSub({ width, height, channels, data }: RasterImage): Buffer {
  const stride = width * channels;
  const out = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const src = y * stride;
    const dst = y * (stride + 1);
    out[dst] = 1;
    for (let x = 0; x < stride; x++) out[dst + 1 + x] = (data[src + x] - (x >= channels ? data[src + x - channels] : 0)) & 0xff;
  }
  return out;
}

function chunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body, crc32(head.subarray(4))) >>> 0, 0);
  return Buffer.concat([head, body, crc]);
}
