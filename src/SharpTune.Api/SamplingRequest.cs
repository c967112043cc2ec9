using System.Text.Json;
using SharpTune.Inference;

namespace SharpTune.Api;

/// <summary>
/// The decoding fields both completion endpoints share, checked against OpenAI's ranges and turned into
/// <see cref="GenerationOptions"/> on top of the served model's defaults.
/// </summary>
public sealed record SamplingRequest(double? Temperature, double? TopP, long? MaxTokens, string MaxTokensField, long? Seed, IReadOnlyList<string> Stop, bool Stream, bool IncludeUsage)
{
    /// <summary>The fields <see cref="Read"/> takes, which both endpoints define (each adds its own).</summary>
    public static readonly IReadOnlySet<string> Parameters = new HashSet<string>(StringComparer.Ordinal)
    {
        "n", "presence_penalty", "frequency_penalty", "logit_bias", "max_tokens", "stream", "stream_options", "temperature", "top_p", "seed", "stop", "user",
    };

    /// <summary>
    /// The smallest temperature above 0 (greedy) that is served, as vLLM's sampling epsilon: the logits are divided
    /// by it in single precision, and near 1e-38 the quotient overflows to infinity and sampling returns garbage;
    /// below this the draw is greedy in all but name.
    /// </summary>
    public const double MinTemperature = 1e-5;

    /// <param name="maxTokensFields">The names a request may use for the token limit, first one wins.</param>
    public static SamplingRequest Read(RequestReader r, params string[] maxTokensFields)
    {
        if (r.Integer("n", long.MinValue, long.MaxValue) is long n && n != 1)
            throw r.Invalid("n", $"must be 1: one choice per request is served, got {n}");
        // OpenAI's penalties change logits by how often a token already occurs; SharpTune's decoder does not
        // implement them, so a request that relies on them is refused rather than silently served without.
        foreach (string penalty in new[] { "presence_penalty", "frequency_penalty" })
            if (r.Number(penalty, -2, 2) is double p && p != 0)
                throw r.Invalid(penalty, "is not supported (only 0); use temperature and top_p");
        r.OnlyDefault("logit_bias", v => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any(), "{}");
        long? maxTokens = null;
        string maxTokensField = maxTokensFields[^1];
        foreach (string field in maxTokensFields)
        {
            if (maxTokens is not null) break;
            maxTokens = r.Integer(field, 1, int.MaxValue);
            if (maxTokens is not null) maxTokensField = field;
        }
        bool stream = r.Bool("stream") ?? false;
        bool includeUsage = false;
        if (r.Get("stream_options") is { } streamOptions)
        {
            if (streamOptions.ValueKind != JsonValueKind.Object) throw r.Invalid("stream_options", "must be an object");
            if (!stream) throw r.Invalid("stream_options", "is only allowed when stream is true");
            includeUsage = new RequestReader(streamOptions, "stream_options.").Bool("include_usage") ?? false;
        }
        double? temperature = r.Number("temperature", 0, 2);
        if (temperature is > 0 and < MinTemperature)
            throw r.Invalid("temperature", $"must be 0 (greedy) or at least {MinTemperature}: smaller values vanish in single precision, got {temperature}");
        double? topP = r.Number("top_p", 0, 1);
        // A top_p below float's smallest value becomes 0 when it reaches the sampler, which keeps no token.
        if (topP is double tiny && (float)tiny <= 0) throw r.Invalid("top_p", $"must be greater than 0 in single precision, got {tiny}");
        return new SamplingRequest(
            temperature,
            topP,
            maxTokens,
            maxTokensField,
            r.Integer("seed", int.MinValue, int.MaxValue),
            ReadStop(r),
            stream,
            includeUsage);
    }

    private static IReadOnlyList<string> ReadStop(RequestReader r)
    {
        var stops = r.Get("stop") switch
        {
            null => [],
            { ValueKind: JsonValueKind.String } s => [s.GetString()!],
            { ValueKind: JsonValueKind.Array } a when a.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String) =>
                a.EnumerateArray().Select(x => x.GetString()!).ToList(),
            _ => throw r.Invalid("stop", "must be a string or an array of strings"),
        };
        if (stops.Count > 4) throw r.Invalid("stop", $"takes at most 4 sequences, got {stops.Count}");
        if (stops.Any(s => s.Length == 0)) throw r.Invalid("stop", "must not contain an empty string");
        return stops;
    }

    /// <summary>
    /// The generation options for a prompt of <paramref name="promptTokens"/> tokens: temperature 0 is greedy, any
    /// other samples; without max_tokens the model's default is used, shortened to what the context has left and to
    /// the server's <paramref name="maxTokensLimit"/> (null: no cap beyond the context).
    /// </summary>
    public GenerationOptions Options(ServedModel model, int promptTokens, int? maxTokensLimit, int? defaultMaxTokens = null)
    {
        if (MaxTokens is long over && over > maxTokensLimit)
            throw ApiException.BadRequest($"{MaxTokensField} is {over}, over this server's limit of {maxTokensLimit} tokens per completion (--max-tokens-limit)", MaxTokensField);
        int room = model.ContextLength - promptTokens;
        if (room < 1)
            throw ApiException.BadRequest($"the prompt is {promptTokens} tokens; this model's context length is {model.ContextLength}, which leaves no room for a completion", null);
        if (MaxTokens is long asked && asked > room)
            throw ApiException.BadRequest(
                $"{MaxTokensField} is {asked}, but the prompt is {promptTokens} tokens and this model's context length is {model.ContextLength}: at most {room} tokens can be generated",
                MaxTokensField);
        int cap = Math.Min(room, maxTokensLimit ?? int.MaxValue);
        var o = model.Defaults with { MaxNewTokens = (int)(MaxTokens ?? Math.Min(defaultMaxTokens ?? model.Defaults.MaxNewTokens, cap)) };
        if (Temperature is double t)
            o = t == 0 ? o with { DoSample = false } : o with { DoSample = true, Temperature = (float)t };
        if (TopP is double p) o = o with { TopP = (float)p };
        if (Seed is long seed) o = o with { Seed = (int)seed };
        return o;
    }
}
