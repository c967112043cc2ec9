namespace SharpTune.Training;

/// <summary>A summed cross-entropy and the number of label tokens it covers; the mean is Sum / Tokens.</summary>
public readonly record struct LossResult(double Sum, int Tokens)
{
    public double Mean => Tokens == 0 ? double.NaN : Sum / Tokens;
}
