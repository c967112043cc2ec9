using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using SharpTune.Api;

namespace SharpTune.Tests.Api;

/// <summary>A theory that binds the IPv6 loopback address; skipped with the reason where ::1 cannot be bound.</summary>
public sealed class Ipv6LoopbackTheoryAttribute : TheoryAttribute
{
    public Ipv6LoopbackTheoryAttribute()
    {
        try
        {
            var probe = new TcpListener(IPAddress.IPv6Loopback, 0);
            probe.Start();
            probe.Stop();
        }
        catch (SocketException e)
        {
            Skip = $"needs the IPv6 loopback address ::1, which cannot be bound here: {e.Message}";
        }
    }
}

/// <summary>
/// Where the server listens (--host) and whom it answers (--allowed-host, --cors-origin), on servers of its own
/// over the fixture's model; they only list models, so no second worker runs that model.
/// </summary>
[Collection(ApiCollection.Name)]
public sealed class ApiBindingTests(ApiServerFixture fx)
{
    [Theory]
    [InlineData("256.1.1.1")]
    [InlineData("1.2.3")]
    [InlineData("127.1")]
    [InlineData("::zz")]
    [InlineData("[1::2::3]")]
    [InlineData("not a host")]
    [InlineData("")]
    public async Task AHostThatIsNeitherAnAddressNorANameIsRefused(string host)
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => ApiServer.StartAsync(new ApiServerOptions { Host = host, Port = 0 }, [fx.Base]));
        Assert.Contains($"'{host}'", e.Message);
    }

    [Fact]
    public async Task ANameBindsEveryAddressItResolvesToOnOnePort()
    {
        var resolved = Dns.GetHostAddresses("localhost").Distinct().ToList();
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Host = "localhost", Port = 0 }, [fx.Base]);

        Assert.True(server.IsLoopbackOnly);
        Assert.Equal(resolved.Select(a => a.ToString()).Order(), server.Addresses.Select(u => IPAddress.Parse(u.Host.Trim('[', ']')).ToString()).Order());
        Assert.Single(server.Addresses.Select(u => u.Port).Distinct());
        foreach (var address in server.Addresses)
        {
            using var client = new HttpClient { BaseAddress = address };
            Assert.Equal(200, (int)(await client.GetAsync("/v1/models")).StatusCode);
            // The name the server was started with is answered as Host too.
            using var named = new HttpRequestMessage(HttpMethod.Get, "/health");
            named.Headers.Host = $"localhost:{address.Port}";
            Assert.Equal(200, (int)(await client.SendAsync(named)).StatusCode);
        }
    }

    [Ipv6LoopbackTheory]
    [InlineData("::1")]
    [InlineData("[::1]")]
    public async Task AnIpv6AddressIsBoundWithOrWithoutBracketsAndAnsweredAsHost(string host)
    {
        await using var server = await ApiServer.StartAsync(new ApiServerOptions { Host = host, Port = 0 }, [fx.Base]);
        using var client = new HttpClient { BaseAddress = server.Address };

        Assert.Equal("[::1]", Assert.Single(server.Addresses).Host);
        Assert.True(server.IsLoopbackOnly);
        Assert.Equal(200, (int)(await client.GetAsync("/health")).StatusCode);
        using var other = new HttpRequestMessage(HttpMethod.Get, "/health");
        other.Headers.Host = $"127.0.0.2:{server.Address.Port}";
        Assert.Equal(403, (int)(await client.SendAsync(other)).StatusCode);
    }

    [Fact]
    public async Task AnAllowedOriginGetsItsPreflightAnsweredAndCorsHeadersAndOthersAreRefused()
    {
        await using var server = await ApiServer.StartAsync(
            new ApiServerOptions { Port = 0, CorsOrigins = ["http://app.example:3000"], AllowedHosts = ["api.example"], ApiKey = "k" }, [fx.Base]);
        using var client = new HttpClient { BaseAddress = server.Address };

        // What a browser sends before the openai client's POST: no key, the headers it is about to send.
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
        preflight.Headers.Add("Origin", "http://app.example:3000");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type,x-stainless-os");
        using (var answer = await client.SendAsync(preflight))
        {
            Assert.Equal(204, (int)answer.StatusCode);
            Assert.Equal("http://app.example:3000", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
            Assert.Contains("POST", answer.Headers.GetValues("Access-Control-Allow-Methods").Single());
            Assert.Equal("authorization,content-type,x-stainless-os", answer.Headers.GetValues("Access-Control-Allow-Headers").Single());
            Assert.Contains("Origin", answer.Headers.Vary);
        }

        using var listing = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        listing.Headers.Add("Origin", "http://app.example:3000");
        listing.Headers.Host = $"api.example:{server.Address.Port}";
        listing.Headers.Authorization = new("Bearer", "k");
        using (var answer = await client.SendAsync(listing))
        {
            Assert.Equal(200, (int)answer.StatusCode);
            Assert.Equal("http://app.example:3000", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
        }

        // The browser can read an error for an allowed origin too (the key check comes after the CORS headers).
        using var unkeyed = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        unkeyed.Headers.Add("Origin", "http://app.example:3000");
        using (var answer = await client.SendAsync(unkeyed))
        {
            Assert.Equal(401, (int)answer.StatusCode);
            Assert.True(answer.Headers.Contains("Access-Control-Allow-Origin"));
        }

        foreach (string origin in new[] { "http://app.example", "https://app.example:3000", "null" })
        {
            using var other = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
            other.Headers.Add("Origin", origin);
            other.Headers.Add("Access-Control-Request-Method", "POST");
            using var answer = await client.SendAsync(other);
            Assert.Equal(403, (int)answer.StatusCode);
            Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
            Assert.Equal("origin_not_allowed", (string)JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["error"]!["code"]!);
        }

        using var otherHost = new HttpRequestMessage(HttpMethod.Get, "/health");
        otherHost.Headers.Host = $"evil.example:{server.Address.Port}";
        Assert.Equal(403, (int)(await client.SendAsync(otherHost)).StatusCode);
    }

    [Fact]
    public async Task AnOriginThatIsNotAnOriginIsRefusedAtStart()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() =>
            ApiServer.StartAsync(new ApiServerOptions { Port = 0, CorsOrigins = ["http://app.example/page"] }, [fx.Base]));
        Assert.Contains("--cors-origin 'http://app.example/page'", e.Message);
    }
}
