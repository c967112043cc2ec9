using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using SharpTune.Hparams;
using SharpTune.Templates;
using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>
/// LLaMA-Factory's <c>SupervisedDatasetProcessor</c> for one aligned example: every slot text is tokenized on its own
/// (the first prompt is the head's ids followed by the first user block's ids), turns are cut to <c>cutoff_len</c>
/// by <see cref="InferSeqLen"/> (last turn first with <c>mask_history</c>), and prompt labels are -100 unless
/// <c>train_on_prompt</c>.
/// </summary>
public sealed class SupervisedProcessor
{
    private readonly Tokenizer tokenizer;
    private readonly ChatTemplate template;
    private readonly int cutoffLen;
    private readonly bool trainOnPrompt;
    private readonly bool maskHistory;
    private readonly int eosTokenId;

    // Most records of a dataset share their head (default system prompt, or one tool list), so its ids are reused.
    private const int MaxCachedHeads = 256;
    private readonly ConcurrentDictionary<string, int[]> headIds = new(StringComparer.Ordinal);

    /// <param name="template">The template as the data arguments set it up (see <see cref="ForData"/>).</param>
    public SupervisedProcessor(Tokenizer tokenizer, ChatTemplate template, int cutoffLen, bool trainOnPrompt, bool maskHistory)
    {
        if (cutoffLen <= 0)
            throw new ArgumentException($"cutoff_len must be positive, got {cutoffLen}");
        if (trainOnPrompt && template.EfficientEos)
            throw new ArgumentException($"template '{template.Name}' does not support train_on_prompt (its answers carry no eos of their own)");
        this.tokenizer = tokenizer;
        this.template = template;
        this.cutoffLen = cutoffLen;
        this.trainOnPrompt = trainOnPrompt;
        this.maskHistory = maskHistory;
        eosTokenId = -1;
        if (template.EfficientEos)
        {
            string eos = template.EosToken ?? throw new ArgumentException($"template '{template.Name}' appends an eos token, but none is bound (WithEosToken)");
            eosTokenId = tokenizer.TokenToId(eos) ?? throw new ArgumentException($"the tokenizer has no token '{eos}' (template '{template.Name}' eos)");
        }
    }

    /// <summary>
    /// A processor for the data arguments: <c>default_system</c> and <c>tool_format</c> change the template as
    /// LLaMA-Factory's <c>get_template_and_fix_tokenizer</c> does, the other settings go to the processor.
    /// </summary>
    public static SupervisedProcessor ForData(Tokenizer tokenizer, ChatTemplate template, DataArguments args)
    {
        if (args.RefusedPair() is { } pair) throw new ArgumentException($"{pair.Key}: {pair.Problem}");
        if (args.DefaultSystem is not null) template = template.WithDefaultSystem(args.DefaultSystem);
        if (args.ToolFormat is not null) template = template.WithToolFormat(args.ToolFormat);
        return new SupervisedProcessor(tokenizer, template, args.CutoffLen, args.TrainOnPrompt, args.MaskHistory);
    }

    public int CutoffLen => cutoffLen;

    /// <exception cref="InvalidRecordException">The template cannot encode the example (e.g. tools with a template that has no tool format).</exception>
    public SupervisedExample Encode(AlignedExample example)
    {
        var pairs = EncodePairs(example);
        if (maskHistory) pairs.Reverse();

        var kept = new List<(int[] Ids, int[] Labels)>(pairs.Count);
        int total = template.EfficientEos ? 1 : 0;
        for (int turn = 0; turn < pairs.Count; turn++)
        {
            if (total >= cutoffLen) break;
            var (source, target) = pairs[turn];
            var (sourceLen, targetLen) = InferSeqLen(source.Length, target.Length, cutoffLen - total);
            total += sourceLen + targetLen;

            var ids = new int[sourceLen + targetLen];
            var labels = new int[sourceLen + targetLen];
            source.AsSpan(0, sourceLen).CopyTo(ids);
            target.AsSpan(0, targetLen).CopyTo(ids.AsSpan(sourceLen));
            if (trainOnPrompt)
            {
                source.AsSpan(0, sourceLen).CopyTo(labels);
            }
            else
            {
                labels.AsSpan(0, sourceLen).Fill(SupervisedCollator.IgnoreIndex);
                // With efficient_eos the previous answer has no eos of its own, so the next prompt's first label trains it.
                if (template.EfficientEos && turn != 0 && sourceLen > 0) labels[0] = eosTokenId;
            }
            if (maskHistory && turn != 0)
                labels.AsSpan(sourceLen).Fill(SupervisedCollator.IgnoreIndex);
            else
                target.AsSpan(0, targetLen).CopyTo(labels.AsSpan(sourceLen));
            kept.Add((ids, labels));
        }
        // mask_history worked from the last turn back; the kept turns still go out in conversation order.
        if (maskHistory) kept.Reverse();

        var inputIds = new List<int>(total);
        var allLabels = new List<int>(total);
        foreach (var (ids, labels) in kept)
        {
            inputIds.AddRange(ids);
            allLabels.AddRange(labels);
        }
        if (template.EfficientEos)
        {
            inputIds.Add(eosTokenId);
            allLabels.Add(eosTokenId);
        }
        var mask = new int[inputIds.Count];
        Array.Fill(mask, 1);
        return new SupervisedExample(inputIds.ToArray(), mask, allLabels.ToArray());
    }

    /// <summary>
    /// LLaMA-Factory's <c>UnsupervisedDatasetProcessor</c>, which prepares prediction runs and the prompts of stage ppo:
    /// the prompt is every message before the last answer (<c>encode_oneturn</c>), the label is that answer (plus the
    /// eos with <c>efficient_eos</c>), both cut to <c>cutoff_len</c> together by <see cref="InferSeqLen"/>.
    /// </summary>
    /// <exception cref="InvalidRecordException">The template cannot encode the example.</exception>
    public GenerationExample EncodeForGeneration(AlignedExample example)
    {
        var (prompt, label) = EncodeOneTurn(example);
        var (sourceLen, targetLen) = InferSeqLen(prompt.Count, label.Length, cutoffLen);
        return new GenerationExample(prompt.GetRange(0, sourceLen).ToArray(), label[..targetLen]) { Question = example.Messages[^2].Content };
    }

    /// <summary>
    /// LLaMA-Factory's <c>PairwiseDatasetProcessor</c> (stages rm and dpo): the prompt and each answer by
    /// <c>encode_oneturn</c> (each answer followed by the eos with <c>efficient_eos</c>); <see cref="InferSeqLen"/>
    /// on the prompt and the longer answer gives one prompt length and one answer length, and both answers are cut to
    /// it. Prompt labels are -100; <c>train_on_prompt</c> and <c>mask_history</c> do not apply (sft only).
    /// </summary>
    /// <exception cref="InvalidRecordException">The template cannot encode the pair.</exception>
    public PairwiseExample EncodePair(AlignedPair pair)
    {
        var (prompt, chosen) = EncodeOneTurn(pair.Chosen);
        var (_, rejected) = EncodeOneTurn(pair.Rejected);
        var (sourceLen, targetLen) = InferSeqLen(prompt.Count, Math.Max(chosen.Length, rejected.Length), cutoffLen);
        var promptIds = CollectionsMarshal.AsSpan(prompt)[..sourceLen];
        return new PairwiseExample(
            PromptAndAnswer(promptIds, chosen.AsSpan(0, Math.Min(targetLen, chosen.Length))),
            PromptAndAnswer(promptIds, rejected.AsSpan(0, Math.Min(targetLen, rejected.Length))));
    }

    /// <summary>
    /// The first half of LLaMA-Factory's <c>FeedbackDatasetProcessor</c> (stage kto): the prompt and answer ids by
    /// <c>encode_oneturn</c>, uncut, since the KL examples pair prompts with other records' answers
    /// (<see cref="KtoExamples"/>).
    /// </summary>
    /// <exception cref="InvalidRecordException">The template cannot encode the example.</exception>
    public FeedbackIds EncodeFeedback(AlignedFeedback feedback)
    {
        var (prompt, answer) = EncodeOneTurn(feedback.Example);
        return new FeedbackIds(prompt.ToArray(), answer, feedback.Desirable);
    }

    /// <summary>
    /// The rest of LLaMA-Factory's <c>FeedbackDatasetProcessor</c>, over the records in dataset order in groups of
    /// <paramref name="batchSize"/> (its <c>preprocessing_batch_size</c> map batches): record i's KL example is its
    /// prompt followed by the answer of record i − 1 of the same group, the group's first record taking the group's
    /// last answer. Each example and each KL example is cut to <c>cutoff_len</c> by <see cref="InferSeqLen"/> on its own.
    /// </summary>
    public List<KtoExample> KtoExamples(IReadOnlyList<FeedbackIds> records, int batchSize)
    {
        if (batchSize <= 0) throw new ArgumentException($"preprocessing_batch_size must be positive, got {batchSize}");
        var examples = new List<KtoExample>(records.Count);
        for (int start = 0; start < records.Count; start += batchSize)
        {
            int end = Math.Min(start + batchSize, records.Count);
            for (int i = start; i < end; i++)
            {
                var record = records[i];
                var previous = records[i == start ? end - 1 : i - 1];
                examples.Add(new KtoExample(Cut(record.PromptIds, record.AnswerIds), Cut(record.PromptIds, previous.AnswerIds), record.Desirable));
            }
        }
        return examples;
    }

    private SupervisedExample Cut(int[] prompt, int[] answer)
    {
        var (sourceLen, targetLen) = InferSeqLen(prompt.Length, answer.Length, cutoffLen);
        return PromptAndAnswer(prompt.AsSpan(0, sourceLen), answer.AsSpan(0, targetLen));
    }

    /// <summary>An example of prompt ids (labels -100) followed by answer ids (labels the ids).</summary>
    private static SupervisedExample PromptAndAnswer(ReadOnlySpan<int> prompt, ReadOnlySpan<int> answer)
    {
        int[] ids = [.. prompt, .. answer];
        var labels = new int[ids.Length];
        labels.AsSpan(0, prompt.Length).Fill(SupervisedCollator.IgnoreIndex);
        answer.CopyTo(labels.AsSpan(prompt.Length));
        var mask = new int[ids.Length];
        Array.Fill(mask, 1);
        return new SupervisedExample(ids, mask, labels);
    }

    /// <summary>
    /// LLaMA-Factory's <c>encode_oneturn</c>: the prompt is every message before the last answer, the answer is the
    /// last one's ids, followed by the eos with <c>efficient_eos</c> (as every processor that uses it appends).
    /// </summary>
    private (List<int> Prompt, int[] Answer) EncodeOneTurn(AlignedExample example)
    {
        var pairs = EncodePairs(example, oneTurn: true);
        var prompt = new List<int>();
        for (int turn = 0; turn < pairs.Count; turn++)
        {
            prompt.AddRange(pairs[turn].Source);
            if (turn < pairs.Count - 1) prompt.AddRange(pairs[turn].Target);
        }
        int[] answer = template.EfficientEos ? [.. pairs[^1].Target, eosTokenId] : pairs[^1].Target;
        return (prompt, answer);
    }

    /// <summary>
    /// Each turn's (prompt, answer) texts tokenized separately; the first prompt starts with the head's ids.
    /// <paramref name="oneTurn"/> writes them as <c>encode_oneturn</c> does (see <see cref="ChatTemplate.EncodeTurns"/>).
    /// </summary>
    private List<(int[] Source, int[] Target)> EncodePairs(AlignedExample example, bool oneTurn = false)
    {
        TurnTexts texts;
        try
        {
            texts = template.EncodeTurns(example.Messages, example.System, example.Tools, oneTurn: oneTurn);
        }
        catch (ArgumentException e)
        {
            throw new InvalidRecordException(e.Message);
        }

        var pairs = new List<(int[] Source, int[] Target)>(texts.Pairs.Count);
        foreach (var (prompt, answer) in texts.Pairs)
        {
            int[] source = template.Encode(tokenizer, prompt);
            if (pairs.Count == 0 && texts.Head.Length > 0)
                source = [.. HeadIds(texts.Head), .. source];
            pairs.Add((source, template.Encode(tokenizer, answer)));
        }
        return pairs;
    }

    private int[] HeadIds(string head)
    {
        if (headIds.TryGetValue(head, out var ids)) return ids;
        ids = template.Encode(tokenizer, head);
        if (headIds.Count < MaxCachedHeads) headIds.TryAdd(head, ids);
        return ids;
    }

    /// <summary>
    /// LLaMA-Factory's <c>infer_seqlen</c>: how many source and target tokens of a turn fit in <paramref name="budget"/>.
    /// A short target is kept whole, else a short source is, else both shrink in proportion.
    /// </summary>
    public static (int SourceLen, int TargetLen) InferSeqLen(int sourceLen, int targetLen, int budget)
    {
        int maxTargetLen;
        if (targetLen * 2 < budget)
            maxTargetLen = budget;
        else if (sourceLen * 2 < budget)
            maxTargetLen = budget - sourceLen;
        else
            maxTargetLen = (int)(budget * ((double)targetLen / (sourceLen + targetLen)));
        int newTargetLen = Math.Min(maxTargetLen, targetLen);
        int newSourceLen = Math.Min(Math.Max(budget - newTargetLen, 0), sourceLen);
        return (newSourceLen, newTargetLen);
    }
}
