using SharpTune.Model;
using SharpTune.Training;
using SharpTune.Training.Methods;
using SharpTune.Training.Model;
using SharpTune.Training.Optim;

namespace SharpTune.Tests.Training;

public sealed class FullFineTuningTests
{
    private static string Reference(string file) => Path.Combine(TrainingFixtures.BaseModel, "reference", file);

    private static WeightsFineTuning Load(bool checkpointing = false) =>
        WeightsFineTuning.Full(TrainableDecoder.Load(TrainingFixtures.BaseModel, checkpointing));

    [Fact]
    public void Gradients_of_every_parameter_match_transformers()
    {
        using var model = Load();
        var loss = model.ForwardBackward(TrainingFixtures.Batch(), 1f, new SeededRandom(1));
        Assert.Equal(9, loss.Tokens);
        Assert.Equal(6.342043399810791, loss.Mean, 1e-5 * 6.342);
        var exp = TrainingFixtures.Read(Reference("full_ft_grads.safetensors"));
        TrainingFixtures.AssertGradients(model.TrainableParameters, exp);
    }
}
