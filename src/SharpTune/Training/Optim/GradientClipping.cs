using SharpTune.Engine;
using SharpTune.Model;

namespace SharpTune.Training.Optim;

/// <summary>torch.nn.utils.clip_grad_norm_ over all trainable parameters (L2 norm).</summary>
public static class GradientClipping
{
    /// <summary>The global L2 norm of all gradients, accumulated in double.</summary>
    public static double GlobalNorm(IReadOnlyList<Parameter> parameters)
    {
        var squares = new double[parameters.Count];
        GemmThreadPool.Shared.For(parameters.Count, i =>
        {
            double s = 0;
            foreach (float g in parameters[i].Grad) s += (double)g * g;
            squares[i] = s;
        });
        return Math.Sqrt(squares.Sum());
    }

    /// <summary>
    /// Scales every gradient by min(1, maxNorm / (norm + 1e-6)) and returns the norm before clipping (what
    /// transformers logs as grad_norm). A non-positive maxNorm disables clipping.
    /// </summary>
    public static double Clip(IReadOnlyList<Parameter> parameters, double maxNorm)
    {
        double norm = GlobalNorm(parameters);
        if (maxNorm <= 0) return norm;
        float coef = (float)Math.Min(1.0, maxNorm / (norm + 1e-6));
        if (coef == 1f) return norm;
        GemmThreadPool.Shared.For(parameters.Count, i =>
        {
            float[] g = parameters[i].Grad;
            for (int j = 0; j < g.Length; j++) g[j] *= coef;
        });
        return norm;
    }
}
