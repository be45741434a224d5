package org.pynenc.sidecar.wf;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The SDK's constants are the client contract's (tests/vectors/client_contract.json). */
class ContractTest {
  @Test
  void constantsAreTheContracts() throws Exception {
    Path file = Path.of(System.getProperty("user.dir"), "..", "..", "tests", "vectors", "client_contract.json");
    JsonObject c = JsonParser.parseString(Files.readString(file)).getAsJsonObject();
    assertEquals(c.get("error_domain").getAsString(), SidecarException.DOMAIN);
    assertEquals(c.getAsJsonArray("reasons").asList().stream().map(e -> e.getAsString()).toList(), List.of(
        SidecarException.INVALID_ARGUMENT, SidecarException.INVOCATION_NOT_FOUND,
        SidecarException.WORKFLOW_ACCESS_DENIED, SidecarException.NONDETERMINISTIC_REPLAY,
        SidecarException.LEASE_NOT_HELD, SidecarException.STORE_UNAVAILABLE, SidecarException.UNAUTHENTICATED,
        SidecarException.WORKFLOW_NOT_FOUND, SidecarException.WORKFLOW_NOT_FAILED));
    JsonObject defaults = c.getAsJsonObject("defaults");
    assertEquals(Duration.ofMillis(defaults.get("lease_ttl_ms").getAsLong()), Contract.DEFAULT_LEASE_TTL);
    assertEquals(Duration.ofMillis(defaults.get("wait_slice_ms").getAsLong()), Contract.DEFAULT_WAIT_SLICE);
    assertEquals(defaults.get("renew_every_fraction_of_ttl").getAsInt(), Contract.RENEW_FRACTION);
    JsonObject retry = c.getAsJsonObject("retry");
    assertEquals(retry.getAsJsonArray("retryable_codes").asList().stream().map(e -> e.getAsString()).toList(),
        Contract.RETRYABLE_CODES);
    assertEquals(retry.get("max_attempts").getAsInt(), Contract.RETRY_MAX_ATTEMPTS);
    assertEquals(Duration.ofMillis(retry.get("initial_backoff_ms").getAsLong()), Contract.RETRY_INITIAL_BACKOFF);
    assertEquals(Duration.ofMillis(retry.get("max_backoff_ms").getAsLong()), Contract.RETRY_MAX_BACKOFF);
    assertEquals(retry.get("backoff_multiplier").getAsInt(), Contract.RETRY_BACKOFF_MULTIPLIER);
    JsonObject env = c.getAsJsonObject("env");
    assertEquals(Map.of("address", env.get("address").getAsString(), "tls", env.get("tls").getAsString(),
            "tls_ca", env.get("tls_ca").getAsString(), "client_cert", env.get("client_cert").getAsString(),
            "client_key", env.get("client_key").getAsString(), "token", env.get("token").getAsString()),
        Map.of("address", Contract.ENV_ADDRESS, "tls", Contract.ENV_TLS, "tls_ca", Contract.ENV_TLS_CA,
            "client_cert", Contract.ENV_CLIENT_CERT, "client_key", Contract.ENV_CLIENT_KEY,
            "token", Contract.ENV_TOKEN));
    assertEquals(env.size(), 6);
    JsonObject commit = c.getAsJsonObject("commit");
    assertEquals(commit.get("flush_at_operations").getAsInt(), Contract.FLUSH_AT_OPERATIONS);
    assertEquals(commit.get("conflict_reruns").getAsInt(), Contract.CONFLICT_RERUNS);
    assertEquals(commit.get("time_step_us").getAsLong(), Contract.TIME_STEP_US);
    assertEquals(commit.getAsJsonArray("reasons").get(0).getAsString(), SidecarException.COMMIT_CONFLICT);
    JsonObject dispatch = c.getAsJsonObject("dispatch");
    assertEquals(Duration.ofMillis(dispatch.get("poll_timeout_ms_default").getAsLong()), Contract.DEFAULT_POLL_TIMEOUT);
    assertEquals(Duration.ofMillis(dispatch.get("poll_timeout_ms_max").getAsLong()), Contract.MAX_POLL_TIMEOUT);
    assertEquals(dispatch.get("max_tasks_per_poll").getAsInt(), Contract.MAX_TASKS_PER_POLL);
    assertEquals(dispatch.get("max_task_ids_per_poll").getAsInt(), Contract.MAX_TASK_IDS_PER_POLL);
    assertEquals(Duration.ofMillis(dispatch.get("shutdown_grace_ms_default").getAsLong()),
        Contract.DEFAULT_SHUTDOWN_GRACE);
    Client client = Client.of(io.grpc.ManagedChannelBuilder.forTarget("127.0.0.1:1").usePlaintext().build());
    assertEquals(Contract.DEFAULT_LEASE_TTL, client.leaseTtl);
    assertEquals(Contract.DEFAULT_WAIT_SLICE, client.waitTimeout);
  }
}
