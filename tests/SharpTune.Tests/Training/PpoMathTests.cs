using SharpTune.Training.Ppo;

namespace SharpTune.Tests.Training;

/// <summary>
/// PPO's arithmetic against values worked out by hand from TRL 0.9's formulas (trl/core.py, PPOTrainer.compute_rewards,
/// compute_advantages, loss; AdaptiveKLController; RunningMoments). Each expected value's arithmetic is in the comment.
/// </summary>
public sealed class PpoMathTests
{
    private const int Digits = 6;

    [Fact]
    public void Gae_with_gamma_1_and_lambda_095_then_whitened_advantages()
    {
        // Sequence 0: values [1, 2], rewards [0.5, 1.5]. t=1: δ = 1.5 + 0 − 2 = −0.5, A = −0.5.
        //   t=0: δ = 0.5 + 2 − 1 = 1.5, A = 1.5 + 0.95·(−0.5) = 1.025. Returns A + V = [2.025, 1.5].
        // Sequence 1: values [0.2], rewards [1.0]: A = 0.8, return 1.0.
        // Whitened over the 3 tokens: mean 1.325/3 = 0.441667, unbiased var = (0.583333² + 0.941667² + 0.358333²)/2
        //   = 0.677708, so A' = (A − mean)/√var = [0.708591, −1.143868, 0.435277].
        var (advantages, returns) = PpoMath.Advantages([[1, 2], [0.2]], [[0.5, 1.5], [1.0]], gamma: 1, lambda: 0.95, whitenRewards: false);
        Assert.Equal(2.025, returns[0][0], Digits);
        Assert.Equal(1.5, returns[0][1], Digits);
        Assert.Equal(1.0, returns[1][0], Digits);
        Assert.Equal(0.708591, advantages[0][0], Digits);
        Assert.Equal(-1.143868, advantages[0][1], Digits);
        Assert.Equal(0.435277, advantages[1][0], Digits);
    }

    [Fact]
    public void Whitened_rewards_keep_their_mean_before_gae()
    {
        // Rewards [0.5, 1.5], [1.0]: mean 1, unbiased var (0.25 + 0.25 + 0)/2 = 0.25, std 0.5, so whitened with the mean
        // added back: [0, 2], [1]. GAE on values [1, 2], [0.2]: t=1: δ = 2 − 2 = 0; t=0: δ = 0 + 2 − 1 = 1, A = 1;
        // sequence 1: A = 1 − 0.2 = 0.8. Returns [2, 2], [1]. Advantages [1, 0, 0.8]: mean 0.6, unbiased var
        // (0.16 + 0.36 + 0.04)/2 = 0.28, whitened [0.4, −0.6, 0.2]/√0.28 = [0.755929, −1.133893, 0.377964].
        var (advantages, returns) = PpoMath.Advantages([[1, 2], [0.2]], [[0.5, 1.5], [1.0]], gamma: 1, lambda: 0.95, whitenRewards: true);
        Assert.Equal(2.0, returns[0][0], Digits);
        Assert.Equal(2.0, returns[0][1], Digits);
        Assert.Equal(1.0, returns[1][0], Digits);
        Assert.Equal(0.755929, advantages[0][0], Digits);
        Assert.Equal(-1.133893, advantages[0][1], Digits);
        Assert.Equal(0.377964, advantages[1][0], Digits);
    }

    [Fact]
    public void Whiten_uses_the_unbiased_variance_and_can_keep_the_mean()
    {
        // [1, 3]: mean 2, unbiased var 2, so (x − 2)/√2 = ∓0.707107; with the mean kept, 2 ∓ 0.707107.
        var whitened = PpoMath.Whiten([[1], [3]], shiftMean: true);
        Assert.Equal(-0.707107, whitened[0][0], Digits);
        Assert.Equal(0.707107, whitened[1][0], Digits);
        var kept = PpoMath.Whiten([[1, 3]], shiftMean: false);
        Assert.Equal(1.292893, kept[0][0], Digits);
        Assert.Equal(2.707107, kept[0][1], Digits);
        Assert.Throws<ArgumentException>(() => PpoMath.Whiten([[1]], shiftMean: true));
    }

    [Fact]
    public void Rewards_are_the_kl_penalty_per_token_and_the_score_at_the_last_token()
    {
        // log π [−1, −2], log π_ref [−1.5, −1]: kl [0.5, −1]; β 0.2: rewards [−0.1, 0.2] and the score 2 at the last
        // token: [−0.1, 2.2].
        var (rewards, kls) = PpoMath.Rewards([2.0], [[-1, -2]], [[-1.5, -1]], klCoef: 0.2);
        Assert.Equal([0.5, -1], kls[0]);
        Assert.Equal(-0.1, rewards[0][0], Digits);
        Assert.Equal(2.2, rewards[0][1], Digits);
    }

    [Theory]
    // A 2, ρ 1.5: −A·ρ = −3, −A·clip = −2.4: the clipped term is larger, so no gradient.
    [InlineData(2, 1.5, -2.4, 0, true)]
    // A 2, ρ 0.5: −1 against −1.6: unclipped, gradient −A·ρ = −1.
    [InlineData(2, 0.5, -1.0, -1.0, false)]
    // A −1, ρ 1.5: 1.5 against 1.2: unclipped, gradient 1.5.
    [InlineData(-1, 1.5, 1.5, 1.5, false)]
    // A −1, ρ 0.5: 0.5 against 0.8: clipped, no gradient.
    [InlineData(-1, 0.5, 0.8, 0, true)]
    // A 2, ρ 1.1 inside the range: both −2.2, gradient −2.2.
    [InlineData(2, 1.1, -2.2, -2.2, false)]
    public void Clipped_policy_loss_and_its_gradient(double advantage, double ratio, double loss, double gradient, bool clipped)
    {
        var result = PpoMath.PolicyLoss(Math.Log(ratio) - 1, -1, advantage, clipRange: 0.2);
        Assert.Equal(loss, result.Loss, Digits);
        Assert.Equal(gradient, result.Gradient, Digits);
        Assert.Equal(clipped, result.Clipped);
    }

    [Theory]
    // v 1, v_old 0.5, R 2: clip(1, 0.3, 0.7) = 0.7: (1 − 2)² = 1 against (0.7 − 2)² = 1.69: clipped, no gradient.
    [InlineData(1.0, 0.5, 2.0, 1.69, 0, true)]
    // v 1, v_old 0.9: inside the range, (1 − 2)² = 1, gradient 2(1 − 2) = −2.
    [InlineData(1.0, 0.9, 2.0, 1.0, -2.0, false)]
    // v 0, v_old 0.5: clip 0.3: 4 against 2.89: unclipped, gradient −4.
    [InlineData(0.0, 0.5, 2.0, 4.0, -4.0, false)]
    public void Clipped_value_loss_and_its_gradient(double value, double oldValue, double returns, double loss, double gradient, bool clipped)
    {
        var result = PpoMath.ValueLoss(value, oldValue, returns, clipRange: 0.2);
        Assert.Equal(loss, result.Loss, Digits);
        Assert.Equal(gradient, result.Gradient, Digits);
        Assert.Equal(clipped, result.Clipped);
    }

    [Fact]
    public void Adaptive_kl_controller_moves_by_the_clipped_proportional_error()
    {
        // Initial 0.2, target 6, horizon 10000, 4 sequences a step.
        var controller = new AdaptiveKlController(0.2, target: 6, horizon: 10000);
        controller.Update(9, 4); // error 9/6 − 1 = 0.5 → 0.2: 0.2·(1 + 0.2·4/10000) = 0.200016
        Assert.Equal(0.200016, controller.Value, 9);
        controller.Update(6.6, 4); // error 0.1: 0.200016·(1 + 0.1·4/10000) = 0.200024000640
        Assert.Equal(0.20002400064, controller.Value, 11);
        controller.Update(3, 4); // error −0.5 → −0.2: ·(1 − 0.00008)
        Assert.Equal(0.20002400064 * 0.99992, controller.Value, 11);
    }

    [Fact]
    public void Running_moments_normalise_scores_as_trl_does()
    {
        // First batch [1, 3] from mean 0, var 1, count 1e-24: batch mean 2, biased var 1; the count ≈ 2, mean 2,
        // var 1, std √(1·2/1) = √2; normalised (x − 2)/(√2 + 1.19e-7) = ∓0.707107.
        var moments = new RunningMoments();
        var normalized = moments.Normalize([1, 3]);
        Assert.Equal(2, moments.Mean, 9);
        Assert.Equal(Math.Sqrt(2), moments.Std, 9);
        Assert.Equal(-0.707107, normalized[0], Digits);
        Assert.Equal(0.707107, normalized[1], Digits);
        // Second batch [5]: delta 3, total 3, sum = 1·2 + 9·2·1/3 + 0 = 8: mean 2 + 3/3 = 3, var 8/3, std √(8/3·3/2) = 2;
        // normalised (5 − 3)/2 = 1.
        var second = moments.Normalize([5]);
        Assert.Equal(3, moments.Mean, 9);
        Assert.Equal(2, moments.Std, 9);
        Assert.Equal(1, second[0], Digits);
    }
}
