using System.Security.Claims;
using System.Text;
using Lepton.Functions.Http;
using Lepton.Shared;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;

namespace Lepton.Functions.Tests.Http;

/// <summary>The audit actor comes from the authenticated identity; errors map to problems once.</summary>
public sealed class AuditActorsTests
{
    private static readonly ControlApiOptions Azure = new() { TrustEasyAuthHeaders = true, UnidentifiedActor = "function-key" };

    private static DefaultHttpContext Context(params Claim[] claims)
    {
        var context = new DefaultHttpContext();
        if (claims.Length > 0)
        {
            context.User = new ClaimsPrincipal(new ClaimsIdentity(claims, "test"));
        }
        return context;
    }

    private static string Principal(params (string Type, string Value)[] claims) => Convert.ToBase64String(Encoding.UTF8.GetBytes(
        "{\"auth_typ\":\"aad\",\"claims\":[" + string.Join(",", claims.Select(c => $"{{\"typ\":\"{c.Type}\",\"val\":\"{c.Value}\"}}")) + "]}"));

    [Fact]
    public void A_function_key_is_named_by_its_key_id()
    {
        Assert.Equal("key:ci-deploy", AuditActors.Of(Context(new Claim(AuditActors.KeyIdClaim, "ci-deploy")), new ControlApiOptions()));
    }

    [Fact]
    public void An_entra_principal_is_named_by_its_user_name()
    {
        var context = Context(new Claim("oid", "0000-1111"), new Claim("preferred_username", "alice@contoso.com"));
        Assert.Equal("alice@contoso.com", AuditActors.Of(context, new ControlApiOptions()));
        Assert.Equal("0000-1111", AuditActors.Of(Context(new Claim("oid", "0000-1111")), new ControlApiOptions()));
    }

    [Fact]
    public void App_service_principal_headers_count_only_where_the_platform_sets_them()
    {
        var context = new DefaultHttpContext();
        context.Request.Headers[AuditActors.PrincipalHeader] = Principal(("name", "Bob"), ("preferred_username", "bob@contoso.com"));
        Assert.Equal("bob@contoso.com", AuditActors.Of(context, Azure));
        // Anywhere else a caller could send them itself.
        Assert.Equal("anonymous", AuditActors.Of(context, new ControlApiOptions()));
        var named = new DefaultHttpContext();
        named.Request.Headers[AuditActors.PrincipalNameHeader] = "carol@contoso.com";
        Assert.Equal("carol@contoso.com", AuditActors.Of(named, Azure));
        var garbage = new DefaultHttpContext();
        garbage.Request.Headers[AuditActors.PrincipalHeader] = "%%%";
        Assert.Equal("function-key", AuditActors.Of(garbage, Azure));
    }

    [Fact]
    public void Actors_are_printable_and_bounded()
    {
        var actor = AuditActors.Of(Context(new Claim("name", "eve\u0007\n" + new string('x', 500))), new ControlApiOptions());
        Assert.Equal(128, actor.Length);
        Assert.DoesNotContain('\n', actor);
    }

    [Fact]
    public void Lepton_errors_keep_their_status_and_code_and_others_hide_internals()
    {
        var conflict = LeptonProblems.For(new IllegalTransitionException("cannot move"), "/api/x", NullLogger.Instance);
        Assert.Equal(409, conflict.StatusCode);
        var problem = Assert.IsType<Microsoft.AspNetCore.Mvc.ProblemDetails>(conflict.Body);
        Assert.Equal(("cannot move", "illegal_transition", "Conflict"), (problem.Detail, problem.Extensions["code"], problem.Title));
        var hidden = LeptonProblems.For(new InvalidOperationException("secret connection string in a stack trace"), "/api/x", NullLogger.Instance);
        Assert.Equal(500, hidden.StatusCode);
        Assert.DoesNotContain("secret", ((Microsoft.AspNetCore.Mvc.ProblemDetails)hidden.Body!).Detail, StringComparison.Ordinal);
        var busy = LeptonProblems.For(new NotReadyException("loading", TimeSpan.FromSeconds(2.2)), null, NullLogger.Instance);
        Assert.Equal(("503", "3"), (busy.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture), busy.Headers["Retry-After"]));
    }
}
