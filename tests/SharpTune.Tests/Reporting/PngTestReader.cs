using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace SharpTune.Tests.Reporting;

/// <summary>
/// A minimal PNG reader for 8-bit RGB images, written from the PNG specification independently of the encoder:
/// it checks the signature and every chunk's CRC (bit-by-bit CRC-32), inflates the IDAT data and undoes all five
/// row filters.
/// </summary>
internal sealed record PngTestImage(int Width, int Height, byte[] Rgb, IReadOnlyList<string> ChunkTypes)
{
    public (byte R, byte G, byte B) Pixel(int x, int y) => (Rgb[(y * Width + x) * 3], Rgb[(y * Width + x) * 3 + 1], Rgb[(y * Width + x) * 3 + 2]);

    public static PngTestImage Read(byte[] file)
    {
        Assert.Equal(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }, file[..8]);
        var types = new List<string>();
        var idat = new MemoryStream();
        int width = 0, height = 0;
        for (int at = 8; at < file.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(at));
            string type = Encoding.ASCII.GetString(file, at + 4, 4);
            byte[] data = file[(at + 8)..(at + 8 + length)];
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(at + 8 + length));
            Assert.Equal(BitwiseCrc32(file.AsSpan(at + 4, 4 + length)), stored);
            types.Add(type);
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4));
                Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, data[8..]); // 8-bit truecolour, deflate, adaptive, no interlace
            }
            if (type == "IDAT") idat.Write(data);
            at += 12 + length;
        }

        var filtered = new MemoryStream();
        using (var inflate = new ZLibStream(new MemoryStream(idat.ToArray()), CompressionMode.Decompress)) inflate.CopyTo(filtered);
        byte[] raw = filtered.ToArray();
        int stride = width * 3;
        Assert.Equal(height * (stride + 1), raw.Length);
        var rgb = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            byte filter = raw[y * (stride + 1)];
            for (int i = 0; i < stride; i++)
            {
                int a = i >= 3 ? rgb[y * stride + i - 3] : 0;
                int b = y > 0 ? rgb[(y - 1) * stride + i] : 0;
                int c = i >= 3 && y > 0 ? rgb[(y - 1) * stride + i - 3] : 0;
                int predictor = filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    4 => PaethPredictor(a, b, c),
                    _ => throw new InvalidDataException($"row {y}: filter type {filter}"),
                };
                rgb[y * stride + i] = (byte)(raw[y * (stride + 1) + 1 + i] + predictor);
            }
        }
        return new PngTestImage(width, height, rgb, types);
    }

    private static int PaethPredictor(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static uint BitwiseCrc32(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }
}
