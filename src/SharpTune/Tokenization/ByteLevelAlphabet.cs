namespace SharpTune.Tokenization;

/// <summary>
/// GPT-2's <c>bytes_to_unicode</c>: every byte gets a printable character so that byte-level BPE tokens are
/// plain strings. Printable Latin-1 bytes map to themselves, the remaining 68 bytes to U+0100.. in byte order.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToCharTable = BuildByteToChar();
    private static readonly short[] CharToByteTable = BuildCharToByte();

    public static char ByteToChar(byte value) => ByteToCharTable[value];

    /// <summary>The byte a byte-level character stands for, or -1 when the character is outside the alphabet.</summary>
    public static int CharToByte(char character) =>
        character < CharToByteTable.Length ? CharToByteTable[character] : -1;

    private static bool IsPrintedAsItself(int value) =>
        value is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int next = 256;
        for (int value = 0; value < 256; value++)
            table[value] = IsPrintedAsItself(value) ? (char)value : (char)next++;
        return table;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[256 + 68];
        Array.Fill(table, (short)-1);
        for (int value = 0; value < 256; value++)
            table[ByteToCharTable[value]] = (short)value;
        return table;
    }
}
