namespace SharpTune.Data;

/// <summary>
/// A preference record in aligned form (LLaMA-Factory's <c>_prompt</c> with a two-answer <c>_response</c>): the same
/// prompt messages, system and tools, ending with the chosen answer in <paramref name="Chosen"/> and with the rejected
/// answer in <paramref name="Rejected"/>.
/// </summary>
public sealed record AlignedPair(AlignedExample Chosen, AlignedExample Rejected);

/// <summary>A KTO record in aligned form: the example (ending with its one answer) and whether that answer is desirable.</summary>
public sealed record AlignedFeedback(AlignedExample Example, bool Desirable);

/// <summary>
/// One tokenised preference pair as LLaMA-Factory's pairwise processor emits it: the prompt followed by the chosen
/// answer and the same prompt followed by the rejected answer, both cut to the same prompt and answer lengths, prompt
/// labels -100.
/// </summary>
public sealed record PairwiseExample(SupervisedExample Chosen, SupervisedExample Rejected);

/// <summary>
/// One tokenised KTO example as LLaMA-Factory's feedback processor emits it: the example (prompt labels -100), its
/// mismatched KL example (this prompt with the answer of the record before it) and its tag.
/// </summary>
public sealed record KtoExample(SupervisedExample Example, SupervisedExample Kl, bool Desirable);

/// <summary>
/// A KTO record's token ids before truncation: the prompt, the answer (with the eos for efficient-eos templates) and
/// the tag. The KL example pairs a prompt with another record's answer, so records are tokenised first and cut to
/// cutoff_len once the pairs are known (<see cref="SupervisedProcessor.KtoExamples"/>).
/// </summary>
public sealed record FeedbackIds(int[] PromptIds, int[] AnswerIds, bool Desirable);
