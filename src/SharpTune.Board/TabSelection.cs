using System.Text.Json.Nodes;
using SharpTune.Quantization;

namespace SharpTune.Board;

/// <summary>The top bar's selection as the chat, compare and export tabs send it, its paths confined to the board's roots.</summary>
/// <param name="ModelKey">The name the model's runs are saved under (saves/KEY/...).</param>
public sealed record TabSelection(string ModelDir, string ModelKey, IReadOnlyList<string> Adapters, string Template, QuantizationOptions? Quantization)
{
    /// <summary>
    /// Reads <c>model</c> (<see cref="TopBarEndpoints.ResolveModel"/>), <c>adapters</c> (saves/), <c>template</c>,
    /// <c>quantization_bit</c> (null, 4 or 8) and <c>quantization_type</c> (nf4, fp4).
    /// </summary>
    public static TabSelection Read(BoardRoots roots, JsonObject body)
    {
        var model = TopBarEndpoints.ResolveModel(roots, BoardJson.RequiredString(body, "model"));
        var adapters = body["adapters"] switch
        {
            null => [],
            JsonArray list => list.Select((a, i) => a is JsonValue v && v.TryGetValue(out string? path)
                ? roots.Confine(path, BoardRoot.Saves)
                : throw BoardException.BadRequest($"field 'adapters[{i}]' must be a string")).ToList(),
            _ => throw BoardException.BadRequest("field 'adapters' must be an array of folders"),
        };
        string template = BoardJson.OptionalString(body, "template") ?? "auto";
        QuantizationOptions? quantization = body["quantization_bit"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out int bits) && bits is 4 or 8 => new QuantizationOptions(bits, (BoardJson.OptionalString(body, "quantization_type") ?? "nf4") switch
            {
                "nf4" => FourBitType.Nf4,
                "fp4" => FourBitType.Fp4,
                var other => throw BoardException.BadRequest($"field 'quantization_type' must be nf4 or fp4, got {BoardException.Quote(other)}"),
            }),
            _ => throw BoardException.BadRequest("field 'quantization_bit' must be null, 4 or 8"),
        };
        return new TabSelection(model.Folder, model.Key, adapters, template, quantization);
    }
}
