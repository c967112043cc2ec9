using System.Text.Json;
using SharpTune.Engine;
using SharpTune.IO;

namespace SharpTune.Model;

/// <summary>
/// config.json's rope_scaling. Implemented: none/"default", "linear" (position interpolation) and "llama3"
/// (Llama 3.1's frequency-dependent scaling), as transformers computes them; any other type is refused by name.
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions)
{
    /// <param name="config">config.json's root, read by <paramref name="configReader"/>.</param>
    internal static RopeScaling? Parse(JsonElement config, JsonConfigReader configReader, string source)
    {
        if (!config.TryGetProperty("rope_scaling", out var node) || node.ValueKind == JsonValueKind.Null) return null;
        if (node.ValueKind != JsonValueKind.Object) throw new ModelFolderException($"{source}: rope_scaling must be an object or null");
        var reader = configReader.Nested(node, "rope_scaling");
        string type = reader.OptionalString("rope_type") ?? reader.OptionalString("type")
            ?? throw new ModelFolderException($"{source}: rope_scaling has no 'type' or 'rope_type'");
        switch (type)
        {
            case "default":
                return null;
            case "linear":
                return new RopeScaling(type, reader.RequiredDouble("factor", min: 0, minExclusive: true), 0, 0, 0);
            case "llama3":
                double factor = reader.RequiredDouble("factor", min: 0, minExclusive: true);
                double low = reader.RequiredDouble("low_freq_factor", min: 0, minExclusive: true);
                // The smoothing between the two wavelengths divides by high - low.
                double high = reader.RequiredDouble("high_freq_factor", min: 0, minExclusive: true);
                if (!(high > low))
                    throw new ModelFolderException($"{source}: 'rope_scaling.high_freq_factor' must be greater than low_freq_factor {low}, got {high}");
                return new RopeScaling(type, factor, low, high, reader.RequiredInt("original_max_position_embeddings", min: 1));
            default:
                throw new ModelFolderException($"{source}: rope_scaling type {MessageText.Quote(type)} is not supported (supported: linear, llama3)");
        }
    }

    /// <summary>The rotary table for a config, applying its scaling to the inverse frequencies.</summary>
    public static RopeTable BuildTable(ModelConfig config)
    {
        // d is the rotated part of a head: all of it, or ChatGLM's first half, whose RotaryEmbedding builds its
        // angles the same way over n_elem = kv_channels / 2 with base 10000 · rope_ratio (our rope_theta).
        var arch = config.Description;
        int d = arch.RotaryDim(config);
        var inv = new float[d / 2];
        float theta = (float)config.RopeTheta;
        for (int i = 0; i < inv.Length; i++)
        {
            // Float32 throughout, as transformers builds inv_freq: 1 / theta ** (arange(0, d, 2).float() / d).
            float exponent = (float)(2 * i) / d;
            inv[i] = 1f / MathF.Pow(theta, exponent);
        }
        if (config.RopeScaling is { } s) s.Apply(inv);
        return new RopeTable(config.HeadDim, inv, arch.Rope);
    }

    private void Apply(float[] inv)
    {
        if (Type == "linear")
        {
            for (int i = 0; i < inv.Length; i++) inv[i] = (float)(inv[i] / Factor);
            return;
        }
        double lowWavelen = OriginalMaxPositions / LowFreqFactor;
        double highWavelen = OriginalMaxPositions / HighFreqFactor;
        for (int i = 0; i < inv.Length; i++)
        {
            double wavelen = 2 * Math.PI / inv[i];
            double scaled = wavelen > lowWavelen ? inv[i] / Factor : inv[i];
            bool medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
            if (medium)
            {
                double smooth = (OriginalMaxPositions / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                scaled = (1 - smooth) * scaled / Factor + smooth * scaled;
            }
            inv[i] = (float)scaled;
        }
    }
}
