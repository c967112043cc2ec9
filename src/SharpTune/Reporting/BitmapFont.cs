namespace SharpTune.Reporting;

/// <summary>
/// A 5×7 bitmap font (printable ASCII) with two descender rows, so plots can carry text without any font file.
/// </summary>
internal static class BitmapFont
{
    public const int GlyphWidth = 5;
    public const int CapHeight = 7;
    public const int CellHeight = 9;
    /// <summary>Glyph width plus one blank column between characters.</summary>
    public const int Advance = GlyphWidth + 1;

    private const char First = ' ', Last = '~';

    // Nine rows per glyph, characters ' '..'~' in order; each row is one base-32 digit (0-9, A-V) whose five bits
    // are the row's pixels, most significant bit leftmost. Rows 0-6 reach from cap height to the baseline, rows 7-8
    // hold descenders.
    private const string Rows =
        "000000000444440400AAA000000AAVAVAA004FKE5U400OP248J300CIK8LID00444000000" +
        "24888420084222480004LEL4000044V4400000000CC48000V0000000000CC0011248GG00" +
        "EHJLPHE004C4444E00EH1248V00V2421HE0026AIV2200VGU11HE0068GUHHE00V12488800" +
        "EHHEHHE00EHHF12C000CC0CC0000CC0CC480248G8420000V0V0000842124800EH1240400" +
        "EH1DLLE00EHHVHHH00UHHUHHU00EHGGGHE00SIHHHIS00VGGUGGV00VGGUGGG00EHGNHHF00" +
        "HHHVHHH00E44444E0072222IC00HIKOKIH00GGGGGGV00HRLLHHH00HHPLJHH00EHHHHHE00" +
        "UHHUGGG00EHHHLID00UHHUKIH00FGGE11U00V44444400HHHHHHE00HHHHHA400HHHLLLA00" +
        "HHA4AHH00HHA444400V1248GV00E88888E00GG8421100E22222E004AH0000000000000V0" +
        "84000000000E1FHF00GGUHHHU0000EGGHE0011FHHHF0000EHVGE00698S8880000FHHHF1E" +
        "GGMPHHH0040C444E002062222ICGGIKOKI00C44444E0000QLLLL0000MPHHH0000EHHHE00" +
        "00UHHHUGG00FHHHF1100MPGGG0000FGE1U0088S88960000HHHJD0000HHHA40000HHLLA00" +
        "00HA4AH0000HHHHF1E00V248V00344844300444444444O44244O00008L20000";

    /// <summary>Whether the pixel at (row, column) of <paramref name="c"/> is ink; characters outside printable
    /// ASCII are drawn as '?'.</summary>
    public static bool IsInk(char c, int row, int column)
    {
        if (c < First || c > Last) c = '?';
        char digit = Rows[(c - First) * CellHeight + row];
        int bits = digit <= '9' ? digit - '0' : digit - 'A' + 10;
        return (bits >> (GlyphWidth - 1 - column) & 1) != 0;
    }

    /// <summary>Width in pixels of <paramref name="text"/> drawn at <paramref name="scale"/>, without trailing space.</summary>
    public static int MeasureWidth(string text, int scale) => text.Length == 0 ? 0 : (text.Length * Advance - 1) * scale;
}
