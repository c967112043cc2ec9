using SharpTune.Data;
using SharpTune.Training;
using SharpTune.Training.Model;
using SharpTune.Tests.Training;

namespace SharpTune.Tests.Peft;

/// <summary>
/// The checks every PEFT method's tests make the same way: gradients against central differences of the loss, a saved
/// folder reloaded for training, and the same folder served unmerged by generation.
/// </summary>
internal static class TunerChecks
{
    /// <summary>
    /// After <c>ForwardBackward</c>: directional derivatives along unit vectors over all trained values (the gradient's
    /// own direction, g·d = |g|, and two fixed pseudo-random ones) against central differences of the evaluation loss.
    /// The model computes in float32: a loss of about 6.3 carries rounding of about 1e-6 relative, so each difference
    /// quotient with h = 1e-2 has noise of about 2·6e-6 / 2h ≈ 6e-4; the truncation error h²/6 · L''' is below that for
    /// a smooth loss (a ReLU kink is crossed only by pre-activations within 1e-2 of 0, whose share of the derivative is
    /// far below the tolerance). A wrong gradient (a missing term, a wrong scale or a sign) is off by a large fraction
    /// of |g|, far beyond 2e-3 + 1e-2 of the value.
    /// </summary>
    public static void AssertGradientsMatchFiniteDifferences(ITrainableModel model, TrainingBatch batch)
    {
        var parameters = model.TrainableParameters;
        double Loss() => model.Evaluate(batch).Mean;
        const float h = 1e-2f;
        var directions = new List<float[][]> { parameters.Select(p => (float[])p.Grad.Clone()).ToArray() };
        for (int seed = 1; seed <= 2; seed++)
        {
            var random = new SeededRandom((ulong)seed);
            directions.Add(parameters.Select(p => Enumerable.Range(0, p.Length).Select(_ => random.NextFloat() - 0.5f).ToArray()).ToArray());
        }
        foreach (var d in directions)
        {
            double norm = Math.Sqrt(d.Sum(v => v.Sum(x => (double)x * x)));
            foreach (var v in d) for (int i = 0; i < v.Length; i++) v[i] = (float)(v[i] / norm);
            double analytic = parameters.Select((p, k) => p.Grad.Select((g, i) => (double)g * d[k][i]).Sum()).Sum();
            void Shift(float by)
            {
                for (int k = 0; k < parameters.Count; k++)
                    for (int i = 0; i < parameters[k].Length; i++) parameters[k].Data[i] += by * d[k][i];
            }
            Shift(h);
            double plus = Loss();
            Shift(-2 * h);
            double minus = Loss();
            Shift(h);
            double numeric = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic) <= 2e-3 + 1e-2 * Math.Abs(analytic), $"directional derivative {analytic}, finite differences {numeric}");
        }
    }

    /// <summary>A folder reloaded for training holds the same parameters, by name and value, and gives the same loss.</summary>
    public static void AssertReloads(ITrainableModel trained, ITrainableModel reloaded, TrainingBatch batch)
    {
        Assert.Equal(trained.TrainableParameters.Select(p => p.Name), reloaded.TrainableParameters.Select(p => p.Name));
        foreach (var (a, b) in trained.TrainableParameters.Zip(reloaded.TrainableParameters)) Assert.Equal(a.Data, b.Data);
        Assert.Equal(trained.Evaluate(batch).Mean, reloaded.Evaluate(batch).Mean);
    }

    /// <summary>The logits generation gives for the fixture's first sequence without its padding.</summary>
    public static float[] FirstSequenceLogits(DecoderModel model)
    {
        var (ids, mask) = FirstSequence();
        return model.Evaluate([ids], [mask]).Logits;
    }

    /// <summary>
    /// The saved folder served unmerged by generation gives the trained model's logits on the fixture's first sequence
    /// (and differs from the base); returns those logits.
    /// </summary>
    public static float[] AssertServedUnmerged(DecoderModel trained, string saved)
    {
        var (ids, mask) = FirstSequence();
        var trainedLogits = trained.Logits(new TrainingBatch(1, ids.Length, ids, mask, ids));
        using var unmerged = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel, adapterDirectories: [saved]);
        using var plain = DecoderModel.LoadForGeneration(TrainingFixtures.BaseModel);
        var withAdapter = FirstSequenceLogits(unmerged);
        TrainingFixtures.AssertClose("unmerged logits", trainedLogits, withAdapter, 1e-4, 1e-4);
        Assert.NotEqual(FirstSequenceLogits(plain), withAdapter);
        return withAdapter;
    }

    private static (int[] Ids, int[] Mask) FirstSequence()
    {
        int length = TrainingFixtures.Base.AttentionMask[0].Count(m => m == 1);
        return (TrainingFixtures.Base.InputIds[0][..length], Enumerable.Repeat(1, length).ToArray());
    }
}
