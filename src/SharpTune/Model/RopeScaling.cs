using System.Text.Json;
using SharpTune.Engine;

namespace SharpTune.Model;

/// <summary>
/// config.json's rope_scaling. Implemented: none/"default", "linear" (position interpolation) and "llama3"
/// (Llama 3.1's frequency-dependent scaling), as transformers computes them; any other type is refused by name.
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions)
{
    public static RopeScaling? Parse(JsonElement config, string source)
    {
        if (!config.TryGetProperty("rope_scaling", out var node) || node.ValueKind == JsonValueKind.Null) return null;
        if (node.ValueKind != JsonValueKind.Object) throw new ModelFolderException($"{source}: rope_scaling must be an object or null");
        string? type = null;
        if (node.TryGetProperty("rope_type", out var rt) && rt.ValueKind == JsonValueKind.String) type = rt.GetString();
        else if (node.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String) type = t.GetString();
        if (type is null) throw new ModelFolderException($"{source}: rope_scaling has no 'type' or 'rope_type'");
        double Number(string key, double? fallback)
        {
            if (node.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number) return v.GetDouble();
            return fallback ?? throw new ModelFolderException($"{source}: rope_scaling type '{type}' needs '{key}'");
        }
        return type switch
        {
            "default" => null,
            "linear" => new RopeScaling(type, Number("factor", null), 0, 0, 0),
            "llama3" => new RopeScaling(type, Number("factor", null), Number("low_freq_factor", null), Number("high_freq_factor", null),
                (int)Number("original_max_position_embeddings", null)),
            _ => throw new ModelFolderException($"{source}: rope_scaling type '{type}' is not supported (supported: linear, llama3)"),
        };
    }

    /// <summary>The rotary table for a config, applying its scaling to the inverse frequencies.</summary>
    public static RopeTable BuildTable(ModelConfig config)
    {
        int d = config.HeadDim;
        var inv = new float[d / 2];
        float theta = (float)config.RopeTheta;
        for (int i = 0; i < inv.Length; i++)
        {
            // Float32 throughout, as transformers builds inv_freq: 1 / theta ** (arange(0, d, 2).float() / d).
            float exponent = (float)(2 * i) / d;
            inv[i] = 1f / MathF.Pow(theta, exponent);
        }
        if (config.RopeScaling is { } s) s.Apply(inv);
        return new RopeTable(d, inv);
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
