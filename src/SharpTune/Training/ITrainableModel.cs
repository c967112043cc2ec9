using SharpTune.Data;
using SharpTune.Model;
using SharpTune.Training.Model;

namespace SharpTune.Training;

/// <summary>
/// What the trainer needs from a model prepared for one fine-tuning method (full, freeze, LoRA): its trainable
/// parameters, a forward + backward pass over a padded batch, an evaluation loss, and saving the result in the
/// format that method produces (an HF model folder's weights, or a PEFT adapter).
/// </summary>
public interface ITrainableModel : IDisposable
{
    /// <summary>The parameters the optimizer updates, in a fixed order (checkpoints rely on it).</summary>
    IReadOnlyList<Parameter> TrainableParameters { get; }

    /// <summary>Every parameter of the model, trainable or not, counted as PEFT's print_trainable_parameters does.</summary>
    long TotalParameterCount { get; }

    /// <summary>
    /// Runs forward and backward over a batch: the loss is the mean cross-entropy over the batch's label tokens,
    /// and gradScale · d(loss)/d(parameter) is ADDED to every trainable parameter's Grad.
    /// Dropout draws from <paramref name="random"/>.
    /// </summary>
    LossResult ForwardBackward(TrainingBatch batch, float gradScale, SeededRandom random);

    /// <summary>The loss of a batch without dropout or gradients.</summary>
    LossResult Evaluate(TrainingBatch batch);

    /// <summary>
    /// The decoder being trained, for objectives beyond the cross-entropy (the preference stages run their own
    /// objectives and reference passes on it); null for a model that is not a <see cref="DecoderModel"/>.
    /// </summary>
    DecoderModel? Decoder => null;

    /// <summary>Writes the trained weights into a folder: adapter_config.json + adapter_model.safetensors, or model weights.</summary>
    void Save(string directory);
}
