using SharpTune.Model;

namespace SharpTune.Training.Optim;

/// <summary>
/// LoRA+ (loraplus_lr_ratio): LLaMA-Factory's optimizer groups (trainer_utils' _create_loraplus_optimizer). By name
/// and shape: LoRA embedding B matrices (lora_embedding_B) train at loraplus_lr_embedding, lora_B matrices and every
/// trainable 1-D tensor (biases, norms, DoRA magnitudes) at learning_rate × loraplus_lr_ratio, everything else
/// (lora_A, full matrices) at learning_rate. Weight decay stays per parameter as transformers decides it, which is
/// what LLaMA-Factory's decay and no-decay groups give.
/// </summary>
public static class LoraPlus
{
    /// <summary>Sets each parameter's <see cref="Parameter.LearningRateScale"/> by the rule, before the optimizer is made.</summary>
    /// <exception cref="ArgumentException">A ratio that is not positive, or an embedding learning rate with learning_rate 0.</exception>
    public static void AssignGroups(IReadOnlyList<Parameter> parameters, double ratio, double embeddingLearningRate, double learningRate)
    {
        if (!(ratio > 0) || double.IsInfinity(ratio)) throw new ArgumentException($"loraplus_lr_ratio must be a positive number, got {ratio}");
        foreach (var p in parameters)
        {
            if (p.Name.Contains("lora_embedding_B", StringComparison.Ordinal))
            {
                if (!(learningRate > 0))
                    throw new ArgumentException($"loraplus_lr_embedding: '{p.Name}' trains at a fixed learning rate, which the schedule scales from learning_rate; learning_rate must be positive, got {learningRate}");
                p.LearningRateScale = embeddingLearningRate / learningRate;
            }
            else if (p.Name.Contains("lora_B", StringComparison.Ordinal) || p.Shape.Length == 1)
                p.LearningRateScale = ratio;
            else
                p.LearningRateScale = 1;
        }
    }
}
