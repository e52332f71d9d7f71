/** Transfer syntaxes the node accepts and stores as received (no transcoding on the receive path). */
export const TS = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  HtJpeg2000Lossless: '1.2.840.10008.1.2.4.201',
  HtJpeg2000LosslessRpcl: '1.2.840.10008.1.2.4.202',
  HtJpeg2000: '1.2.840.10008.1.2.4.203',
  Rle: '1.2.840.10008.1.2.5',
} as const;

/** In order of preference when a peer proposes several in one presentation context: keep what the
 *  modality compressed (smaller on disk, no loss introduced by us), else explicit, else implicit.
 *  Deflated is not accepted: dcmjs-dimse would parse it without inflating. Big endian is retired. */
export const ACCEPTED_TRANSFER_SYNTAXES: readonly string[] = [
  TS.JpegLosslessSV1,
  TS.JpegLossless,
  TS.JpegLsLossless,
  TS.Jpeg2000Lossless,
  TS.HtJpeg2000Lossless,
  TS.HtJpeg2000LosslessRpcl,
  TS.Rle,
  TS.JpegLsNearLossless,
  TS.Jpeg2000,
  TS.HtJpeg2000,
  TS.JpegBaseline,
  TS.JpegExtended,
  TS.ExplicitVRLittleEndian,
  TS.ImplicitVRLittleEndian,
];

/** Every accepted syntax but implicit VR encodes the dataset (outside pixel data) as explicit VR LE. */
export function isExplicitVr(ts: string): boolean {
  return ts !== TS.ImplicitVRLittleEndian;
}
