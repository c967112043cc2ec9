using System.Text.Json;

namespace SharpTune.Tokenization;

/// <summary>The parts of a folder's tokenizer_config.json that SharpTune reads besides the chat template.</summary>
public static class TokenizerConfig
{
    public static string Path(string dir) => System.IO.Path.Combine(dir, "tokenizer_config.json");

    /// <summary>
    /// The text of the eos token (a plain string, or an AddedToken object's "content"); null when the folder has no
    /// tokenizer_config.json or it names no eos token.
    /// </summary>
    public static string? EosToken(string dir) => SpecialToken(dir, "eos_token");

    /// <summary>The text of the padding token, read like <see cref="EosToken"/>.</summary>
    public static string? PadToken(string dir) => SpecialToken(dir, "pad_token");

    /// <summary>
    /// The bos token's text when tokenizer_config.json sets <c>add_bos_token: true</c> and names a bos token (as
    /// Llama-2-style tokenizers do), else null: the token a tokenizer puts before every text it encodes.
    /// </summary>
    public static string? AddedBosToken(string dir) =>
        Read(dir, root => root.TryGetProperty("add_bos_token", out var flag) && flag.ValueKind == JsonValueKind.True
            && root.TryGetProperty("bos_token", out var bos) ? TokenText(bos) : null);

    /// <summary>
    /// The id that fills padded positions: the pad token's, or the eos token's when there is none (as LLaMA-Factory
    /// fixes the tokenizer). Padded positions are masked out of attention and loss, so with neither token named any
    /// valid id (0) pads equally well.
    /// </summary>
    public static int PadTokenId(Tokenizer tokenizer, string dir)
    {
        foreach (string? token in new[] { PadToken(dir), EosToken(dir) })
            if (token is not null && tokenizer.TokenToId(token) is int id) return id;
        return 0;
    }

    /// <summary>
    /// The texts of additional_special_tokens (plain strings or AddedToken objects); empty when the folder has no
    /// tokenizer_config.json or it lists none.
    /// </summary>
    public static IReadOnlyList<string> AdditionalSpecialTokens(string dir) =>
        Read<IReadOnlyList<string>>(dir, root => root.TryGetProperty("additional_special_tokens", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().Select(TokenText).OfType<string>().ToList()
            : null) ?? [];

    private static string? TokenText(JsonElement token) => token.ValueKind switch
    {
        JsonValueKind.String => token.GetString(),
        JsonValueKind.Object when token.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
        _ => null,
    };

    private static string? SpecialToken(string dir, string key) =>
        Read(dir, root => root.TryGetProperty(key, out var token) ? TokenText(token) : null);

    /// <summary>What <paramref name="read"/> finds in the file's top-level object; null when there is no file or no object.</summary>
    private static T? Read<T>(string dir, Func<JsonElement, T?> read) where T : class
    {
        string path = Path(dir);
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object ? read(doc.RootElement) : null;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }
}
