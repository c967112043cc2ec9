using System.Globalization;
using System.Text.Json;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Data.Cleaning;

/// <summary>
/// data-juicer's token_num_filter (min 10, max unbounded), counting tokens as training encodes the record and
/// `data inspect` counts them: the record read in its file's detected format (<see cref="DatasetInspector.Detect"/>)
/// and encoded by <see cref="SupervisedProcessor"/> with the chosen template, without a length limit, prompt and
/// trained tokens together. data-juicer counts the raw text's tokens of one tokenizer instead; the template's own
/// tokens (role markers, the default system prompt) are part of what training reads, so they count here. A record
/// training cannot encode is removed, the reason measured.
/// </summary>
public sealed class TokenNumRule : IRecordFilterRule
{
    private readonly SupervisedProcessor processor;
    private readonly string templateName;
    private readonly DatasetEntry? entry;

    private TokenNumRule(SupervisedProcessor processor, string templateName, int min, int max, DatasetEntry? entry)
    {
        this.processor = processor;
        this.templateName = templateName;
        Min = min;
        Max = max;
        this.entry = entry;
    }

    /// <summary>The rule for the model folder <paramref name="tokenizerDir"/> and template (a name, or auto: the folder's).</summary>
    public static TokenNumRule Load(string tokenizerDir, string template, int min, int max)
    {
        if (min > max) throw new ArgumentException($"rule 'token_num': min {min} is above max {max}");
        var tokenizer = Tokenizer.FromDirectory(tokenizerDir);
        var chat = ChatTemplates.ForModel(template, tokenizerDir, tokenizer);
        return new TokenNumRule(DatasetInspector.WholeRecordProcessor(tokenizer, chat), chat.Name, min, max, null);
    }

    public int Min { get; }

    public int Max { get; }

    public string Name => "token_num";

    public string Description =>
        $"tokens as template '{templateName}' encodes the record (prompt + trained) outside [{Min}, {(Max == int.MaxValue ? "inf" : Max.ToString(CultureInfo.InvariantCulture))}]";

    /// <summary>The rule reading the records of the file at <paramref name="path"/> in its detected format (a pass over the file, streamed).</summary>
    public TokenNumRule ForFile(string path) =>
        new(processor, templateName, Min, Max, DatasetInspector.Detect(path, DatasetRecordFile.ReadBatches(path).SelectMany(batch => batch)).Entry);

    public string? Reject(JsonElement record, string text)
    {
        var format = entry ?? throw new InvalidOperationException("token_num counts a file's records: bind it with ForFile first");
        int tokens;
        try
        {
            tokens = processor.Encode(DatasetConverter.Convert(format, record)).InputIds.Length;
        }
        catch (InvalidRecordException e)
        {
            return $"not encodable: {e.Message}";
        }
        return tokens < Min || tokens > Max ? tokens.ToString(CultureInfo.InvariantCulture) : null;
    }
}
