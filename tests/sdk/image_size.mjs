// (width, height) of a PNG or JPEG, read from its header as a user's imaging library would; shared by the
// Node drivers (there is no imaging library in their npm folder).
export function imageSize(bytes) {
  const buffer = Buffer.from(bytes);
  if (buffer.subarray(0, 4).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47]))) return [buffer.readUInt32BE(16), buffer.readUInt32BE(20)];
  let offset = 2;
  while (buffer[0] === 0xff && buffer[1] === 0xd8 && offset + 9 < buffer.length) {
    const marker = buffer[offset + 1];
    if (marker >= 0xc0 && marker <= 0xc2) return [buffer.readUInt16BE(offset + 7), buffer.readUInt16BE(offset + 5)];
    offset += 2 + buffer.readUInt16BE(offset + 2);
  }
  return null;
}
