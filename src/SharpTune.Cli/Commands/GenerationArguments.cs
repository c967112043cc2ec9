using System.CommandLine;
using SharpTune.Inference;

namespace SharpTune.Cli.Commands;

/// <summary>The decoding options shared by chat and generate; unset ones keep the model folder's defaults.</summary>
public sealed class GenerationArguments
{
    public Option<int?> MaxNewTokens { get; } = new("--max-new-tokens") { Description = "Maximum number of tokens to generate (default 512)" };
    public Option<float?> Temperature { get; } = new("--temperature") { Description = "Sampling temperature; 0 means greedy decoding" };
    public Option<float?> TopP { get; } = new("--top-p") { Description = "Nucleus sampling probability mass" };
    public Option<int?> TopK { get; } = new("--top-k") { Description = "Sample among the k most likely tokens (0 = off)" };
    public Option<float?> RepetitionPenalty { get; } = new("--repetition-penalty") { Description = "Penalty for tokens already in the sequence (1 = off)" };
    public Option<int?> NoRepeatNgramSize { get; } = new("--no-repeat-ngram-size") { Description = "Never repeat an n-gram of this size (0 = off)" };
    public Option<bool> Greedy { get; } = new("--greedy") { Description = "Greedy decoding regardless of generation_config.json" };
    public Option<int?> Seed { get; } = new("--seed") { Description = "Random seed for sampling" };

    public void AddTo(Command command)
    {
        command.Options.Add(MaxNewTokens);
        command.Options.Add(Temperature);
        command.Options.Add(TopP);
        command.Options.Add(TopK);
        command.Options.Add(RepetitionPenalty);
        command.Options.Add(NoRepeatNgramSize);
        command.Options.Add(Greedy);
        command.Options.Add(Seed);
    }

    public GenerationOptions Apply(ParseResult r, GenerationOptions defaults)
    {
        var o = defaults with { MaxNewTokens = r.GetValue(MaxNewTokens) ?? 512 };
        if (r.GetValue(Temperature) is float t)
            o = t == 0 ? o with { DoSample = false } : o with { DoSample = true, Temperature = t };
        if (r.GetValue(TopP) is float p) o = o with { TopP = p };
        if (r.GetValue(TopK) is int k) o = o with { TopK = k };
        if (r.GetValue(RepetitionPenalty) is float rp) o = o with { RepetitionPenalty = rp };
        if (r.GetValue(NoRepeatNgramSize) is int n) o = o with { NoRepeatNgramSize = n };
        if (r.GetValue(Greedy)) o = o with { DoSample = false };
        if (r.GetValue(Seed) is int s) o = o with { Seed = s };
        o.Validate();
        return o;
    }
}
