using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>
/// LLaMA-Factory's <c>PretrainDatasetProcessor</c> (stage pt, continued pretraining on plain text), with the labels
/// its <c>DataCollatorForLanguageModeling(mlm=False)</c> gives: every token is trained except those equal to the pad
/// token. Records are processed in groups of <c>preprocessing_batch_size</c> (LLaMA-Factory maps the merged dataset
/// in such batches), each text followed by the eos token.
/// <list type="bullet">
/// <item>With packing (pt's default): a group's texts are tokenized, concatenated, and cut into blocks of exactly
/// <c>cutoff_len</c> tokens; the group's last partial block is dropped. With a bos token to add, each block's first
/// token is replaced by it.</item>
/// <item>Without packing: each text (after the bos text, when one is added) is tokenized and cut to its first
/// <c>cutoff_len</c> tokens.</item>
/// </list>
/// </summary>
public sealed class PretrainProcessor
{
    private readonly Tokenizer tokenizer;
    private readonly string eosText;
    private readonly string? bosText;
    private readonly int bosId;
    private readonly int cutoffLen;
    private readonly bool packing;
    private readonly int padId;
    private readonly int batchSize;

    /// <param name="eosText">The eos token appended to every text (the template-fixed tokenizer's eos).</param>
    /// <param name="bosText">The bos token when the tokenizer adds one (tokenizer_config.json add_bos_token), else null.</param>
    /// <param name="padId">The pad token's id: positions holding it carry no label.</param>
    /// <param name="batchSize">preprocessing_batch_size: records per group.</param>
    public PretrainProcessor(Tokenizer tokenizer, string eosText, string? bosText, int cutoffLen, bool packing, int padId, int batchSize)
    {
        if (cutoffLen <= 0) throw new ArgumentException($"cutoff_len must be positive, got {cutoffLen}");
        if (batchSize <= 0) throw new ArgumentException($"preprocessing_batch_size must be positive, got {batchSize}");
        if (tokenizer.TokenToId(eosText) is null)
            throw new ArgumentException($"the eos token '{eosText}' is not a token of the tokenizer, so texts cannot be ended with it");
        this.tokenizer = tokenizer;
        this.eosText = eosText;
        this.bosText = bosText;
        if (bosText is not null)
            bosId = tokenizer.TokenToId(bosText) ?? throw new ArgumentException($"the bos token '{bosText}' is not a token of the tokenizer");
        this.cutoffLen = cutoffLen;
        this.packing = packing;
        this.padId = padId;
        this.batchSize = batchSize;
    }

    /// <summary>The training examples of <paramref name="texts"/>, in order.</summary>
    public List<SupervisedExample> Process(IReadOnlyList<string> texts)
    {
        var examples = new List<SupervisedExample>();
        for (int start = 0; start < texts.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, texts.Count - start);
            var ids = new int[count][];
            Parallel.For(0, count, i =>
            {
                string text = texts[start + i] + eosText;
                if (!packing && bosText is not null) text = bosText + text;
                ids[i] = tokenizer.Encode(text);
            });
            if (packing) examples.AddRange(Blocks(ids));
            else examples.AddRange(ids.Select(t => Example(t.Length > cutoffLen ? t[..cutoffLen] : t)));
        }
        return examples;
    }

    private IEnumerable<SupervisedExample> Blocks(int[][] group)
    {
        var all = group.SelectMany(t => t).ToArray();
        for (int at = 0; at + cutoffLen <= all.Length; at += cutoffLen)
        {
            var block = all[at..(at + cutoffLen)];
            if (bosText is not null) block[0] = bosId;
            yield return Example(block);
        }
    }

    private SupervisedExample Example(int[] ids)
    {
        var labels = ids.Select(id => id == padId ? SupervisedCollator.IgnoreIndex : id).ToArray();
        var mask = new int[ids.Length];
        Array.Fill(mask, 1);
        return new SupervisedExample(ids, mask, labels);
    }
}
