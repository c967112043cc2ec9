using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.IO;

namespace SharpTune.Peft.Bottleneck;

/// <summary>
/// adapter_config.json as the adapters library (adapter-hub) writes it for a bottleneck adapter: the model fields
/// (model_type, hidden_size, model_name, model_class, name, version "adapters.X") around "config", the BnConfig of
/// its Houlsby preset (double_seq_bn: mh_adapter and output_adapter, reduction_factor 16, non_linearity swish,
/// init_weights bert). SharpTune reads the bottleneck variants that are exactly an output-side tuner of o_proj and
/// down_proj (sequential, no extra layer norms, gating or PHM, the residual taken before the original layer norm) and
/// refuses the others naming the field.
/// </summary>
public sealed class BottleneckConfig
{
    /// <summary>The key SharpTune registers this format under: the library's folders carry no peft_type.</summary>
    public const string PeftType = "ADAPTERS_BOTTLENECK";
    /// <summary>The library version whose schema the written config follows.</summary>
    public const string LibraryVersion = "adapters.1.2.0";

    /// <summary>The adapter's name in the library (its keys' "adapters.NAME."); load_adapter loads it under this name.</summary>
    public string Name { get; init; } = "default";
    public bool MhAdapter { get; init; } = true;
    public bool OutputAdapter { get; init; } = true;
    public double ReductionFactor { get; init; } = 16;
    public BottleneckActivation NonLinearity { get; init; } = BottleneckActivation.Swish;
    public double Scaling { get; init; } = 1.0;
    /// <summary>Layers without adapters (leave_out).</summary>
    public IReadOnlyList<int> LeaveOut { get; init; } = [];
    public string ModelType { get; init; } = "qwen2";
    public int HiddenSize { get; init; }
    public string ModelName { get; init; } = "";

    /// <summary>The bottleneck width for a hidden size, as the library computes it: int(hidden // reduction_factor), at least 1.</summary>
    public int BottleneckSize(int hiddenSize) => Math.Max(1, (int)Math.Floor(hiddenSize / ReductionFactor));

    public static string NonLinearityName(BottleneckActivation a) => a == BottleneckActivation.Relu ? "relu" : "swish";

    /// <summary>The library's non_linearity name (case-insensitive, as its Activation_Function_Class lowers it).</summary>
    /// <exception cref="ArgumentException">A name SharpTune does not implement.</exception>
    public static BottleneckActivation ParseNonLinearity(string name) => name.ToLowerInvariant() switch
    {
        "swish" or "silu" => BottleneckActivation.Swish,
        "relu" => BottleneckActivation.Relu,
        _ => throw new ArgumentException($"non_linearity {MessageText.Quote(name)} is not supported; use swish or relu"),
    };

    /// <exception cref="InvalidDataException">Unreadable, not a bottleneck config, or a variant SharpTune does not implement: "PATH: 'config.field' problem".</exception>
    public static BottleneckConfig Load(string adapterDirectory) => PeftConfigFile.Read(adapterDirectory, (json, path, reader) =>
    {
        if (PeftAdapterFolders.PeftType(adapterDirectory) != PeftType)
            throw new InvalidDataException($"{path}: not a bottleneck adapter of the adapters library (a \"config\" object with architecture null and a \"version\" of \"adapters.X\")");
        var config = json.GetProperty("config");
        var c = reader.Nested(config, "config");
        void Require(string field, bool expected, bool fallback)
        {
            if ((c.OptionalBool(field) ?? fallback) != expected)
                throw new InvalidDataException($"{path}: 'config.{field}' must be {(expected ? "true" : "false")}: SharpTune implements the sequential (Houlsby/Pfeiffer-style) bottleneck on a pre-norm decoder");
        }
        Require("is_parallel", false, false);
        Require("ln_before", false, false);
        Require("ln_after", false, false);
        Require("use_gating", false, false);
        Require("phm_layer", false, false);
        Require("original_ln_before", false, false);
        Require("original_ln_after", true, true);
        Require("adapter_residual_before_ln", false, false);
        if (config.TryGetProperty("residual_before_ln", out var residual) && residual.ValueKind != JsonValueKind.True)
            throw new InvalidDataException($"{path}: 'config.residual_before_ln' must be true (the adapter's residual is the projection's output)");
        if ((c.OptionalDouble("dropout", min: 0) ?? 0) != 0) throw new InvalidDataException($"{path}: 'config.dropout' must be 0; adapter dropout is not implemented");
        if ((c.OptionalDouble("stochastic_depth", min: 0) ?? 0) != 0) throw new InvalidDataException($"{path}: 'config.stochastic_depth' must be 0");
        if (c.OptionalString("inv_adapter") is { } inv) throw new InvalidDataException($"{path}: 'config.inv_adapter' {MessageText.Quote(inv)} (invertible adapters) is not supported");
        if (config.TryGetProperty("scaling", out var scaling) && scaling.ValueKind == JsonValueKind.String)
            throw new InvalidDataException($"{path}: 'config.scaling' {scaling.GetRawText()} (a learned scaling) is not supported; only a number");
        if (config.TryGetProperty("reduction_factor", out var factor) && factor.ValueKind == JsonValueKind.Object)
            throw new InvalidDataException($"{path}: 'config.reduction_factor' per layer is not supported; only a number");
        BottleneckActivation activation;
        try
        {
            activation = ParseNonLinearity(c.OptionalString("non_linearity") ?? "relu");
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: 'config.{e.Message}", e);
        }
        int[] leaveOut = config.TryGetProperty("leave_out", out var leave) && leave.ValueKind == JsonValueKind.Array
            ? leave.EnumerateArray().Select(e => e.TryGetInt32(out int l) ? l : throw new InvalidDataException($"{path}: 'config.leave_out' holds {e.GetRawText()}, not a layer index")).ToArray()
            : [];
        return new BottleneckConfig
        {
            Name = reader.RequiredString("name"),
            MhAdapter = c.OptionalBool("mh_adapter") ?? false,
            OutputAdapter = c.OptionalBool("output_adapter") ?? false,
            ReductionFactor = c.OptionalDouble("reduction_factor", min: 0, minExclusive: true) ?? throw new InvalidDataException($"{path}: required key 'config.reduction_factor' is missing"),
            NonLinearity = activation,
            Scaling = c.OptionalDouble("scaling") ?? 1.0,
            LeaveOut = leaveOut,
            ModelType = reader.OptionalString("model_type") ?? "",
            HiddenSize = reader.OptionalInt("hidden_size", min: 1) ?? 0,
            ModelName = reader.OptionalString("model_name") ?? "",
        };
    });

    /// <summary>Writes adapter_config.json as the library's save_adapter does (its BnConfig fields, keys sorted, indent 2).</summary>
    public void Save(string adapterDirectory, string modelClass)
    {
        var config = new JsonObject
        {
            ["adapter_residual_before_ln"] = false,
            ["architecture"] = null,
            ["cross_adapter"] = false,
            ["dropout"] = 0.0,
            ["factorized_phm_W"] = true,
            ["factorized_phm_rule"] = false,
            ["hypercomplex_nonlinearity"] = "glorot-uniform",
            ["init_weights"] = "bert",
            ["init_weights_seed"] = null,
            ["inv_adapter"] = null,
            ["inv_adapter_reduction_factor"] = null,
            ["is_parallel"] = false,
            ["learn_phm"] = true,
            ["leave_out"] = new JsonArray(LeaveOut.Select(l => (JsonNode?)l).ToArray()),
            ["ln_after"] = false,
            ["ln_before"] = false,
            ["mh_adapter"] = MhAdapter,
            ["non_linearity"] = NonLinearityName(NonLinearity),
            ["original_ln_after"] = true,
            ["original_ln_before"] = false,
            ["output_adapter"] = OutputAdapter,
            ["phm_bias"] = true,
            ["phm_c_init"] = "normal",
            ["phm_dim"] = 4,
            ["phm_init_range"] = 0.0001,
            ["phm_layer"] = false,
            ["phm_rank"] = 1,
            ["reduction_factor"] = ReductionFactor == Math.Floor(ReductionFactor) ? JsonValue.Create((long)ReductionFactor) : JsonValue.Create(ReductionFactor),
            ["residual_before_ln"] = true,
            ["scaling"] = Scaling,
            ["shared_W_phm"] = false,
            ["shared_phm_rule"] = true,
            ["stochastic_depth"] = 0.0,
            ["use_gating"] = false,
        };
        PeftConfigFile.Write(adapterDirectory, new JsonObject
        {
            ["config"] = config,
            ["hidden_size"] = HiddenSize,
            ["model_class"] = modelClass,
            ["model_name"] = ModelName,
            ["model_type"] = ModelType,
            ["name"] = Name,
            ["version"] = LibraryVersion,
        });
    }
}
