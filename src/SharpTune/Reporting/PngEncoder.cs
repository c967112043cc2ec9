using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace SharpTune.Reporting;

/// <summary>
/// Writes 8-bit truecolour PNG files (PNG spec, ISO/IEC 15948): signature, IHDR, one zlib-compressed IDAT, IEND.
/// Each row gets the filter of the five that minimises the sum of absolute filtered bytes, the heuristic the PNG
/// specification recommends for truecolour images.
/// </summary>
internal static class PngEncoder
{
    private static readonly byte[] Signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private const int BytesPerPixel = 3;

    /// <summary>Encodes <paramref name="rgb"/> (rows top to bottom, 3 bytes per pixel) as a PNG.</summary>
    public static void Write(Stream output, int width, int height, byte[] rgb)
    {
        if (width <= 0 || height <= 0 || rgb.Length != (long)width * height * BytesPerPixel)
            throw new ArgumentException($"PNG: {rgb.Length} bytes do not hold a {width}x{height} RGB image");

        output.Write(Signature);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[9] = 2; // colour type: truecolour; compression, filter and interlace methods stay 0
        WriteChunk(output, "IHDR", header);
        WriteChunk(output, "IDAT", Compress(width, height, rgb));
        WriteChunk(output, "IEND", []);
    }

    private static byte[] Compress(int width, int height, byte[] rgb)
    {
        int stride = width * BytesPerPixel;
        var candidates = new byte[5][];
        for (int f = 0; f < candidates.Length; f++) candidates[f] = new byte[stride];
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            for (int y = 0; y < height; y++)
            {
                ReadOnlySpan<byte> row = rgb.AsSpan(y * stride, stride);
                ReadOnlySpan<byte> above = y == 0 ? new byte[stride] : rgb.AsSpan((y - 1) * stride, stride);
                int best = 0;
                long bestCost = long.MaxValue;
                for (int filter = 0; filter < candidates.Length; filter++)
                {
                    long cost = Filter(filter, row, above, candidates[filter]);
                    if (cost < bestCost) (best, bestCost) = (filter, cost);
                }
                zlib.WriteByte((byte)best);
                zlib.Write(candidates[best]);
            }
        }
        return compressed.ToArray();
    }

    /// <summary>Applies filter type 0-4 (None, Sub, Up, Average, Paeth); returns the sum of |filtered byte| read as signed.</summary>
    private static long Filter(int filter, ReadOnlySpan<byte> row, ReadOnlySpan<byte> above, Span<byte> result)
    {
        long cost = 0;
        for (int i = 0; i < row.Length; i++)
        {
            int left = i >= BytesPerPixel ? row[i - BytesPerPixel] : 0;
            int upperLeft = i >= BytesPerPixel ? above[i - BytesPerPixel] : 0;
            int predictor = filter switch
            {
                0 => 0,
                1 => left,
                2 => above[i],
                3 => (left + above[i]) >> 1,
                _ => Paeth(left, above[i], upperLeft),
            };
            byte value = (byte)(row[i] - predictor);
            result[i] = value;
            cost += Math.Abs((int)(sbyte)value);
        }
        return cost;
    }

    private static int Paeth(int left, int above, int upperLeft)
    {
        int estimate = left + above - upperLeft;
        int toLeft = Math.Abs(estimate - left), toAbove = Math.Abs(estimate - above), toUpperLeft = Math.Abs(estimate - upperLeft);
        if (toLeft <= toAbove && toLeft <= toUpperLeft) return left;
        return toAbove <= toUpperLeft ? above : upperLeft;
    }

    private static void WriteChunk(Stream output, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        byte[] typeBytes = Encoding.ASCII.GetBytes(type);
        output.Write(typeBytes);
        output.Write(data);
        uint crc = Crc32.Update(Crc32.Update(0xFFFFFFFFu, typeBytes), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(word, crc);
        output.Write(word);
    }

    /// <summary>The CRC-32 of PNG chunks (ISO 3309 polynomial, reflected, 0xEDB88320), table driven.</summary>
    private static class Crc32
    {
        private static readonly uint[] Table = BuildTable();

        private static uint[] BuildTable()
        {
            var table = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                table[n] = c;
            }
            return table;
        }

        public static uint Update(uint crc, ReadOnlySpan<byte> bytes)
        {
            foreach (byte b in bytes) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            return crc;
        }
    }
}
