package org.pynenc.sidecar.wf;

import io.grpc.CallCredentials;
import io.grpc.ChannelCredentials;
import io.grpc.CompositeChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.Metadata;
import io.grpc.TlsChannelCredentials;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Locale;
import java.util.concurrent.Executor;

/**
 * How a client reaches a sidecar that serves TLS (--tls-cert), mutual TLS (--tls-client-ca) or
 * requires a bearer token (--auth-token-file), as every SDK reads it.
 *
 * @param caFile the PEM CA that signed the sidecar's certificate (null: the system's CAs)
 * @param certFile this worker's PEM certificate, for mutual TLS (with keyFile)
 * @param keyFile this worker's PEM key
 * @param token sent on every call as "authorization: Bearer &lt;token&gt;"
 * @param tls TLS with the system's CAs when no caFile is given
 */
public record Security(String caFile, String certFile, String keyFile, String token, boolean tls) {
  /** PYNENC_SIDECAR_TLS_CA, _CLIENT_CERT, _CLIENT_KEY, _TOKEN and _TLS (true: TLS with the system's CAs). */
  public static Security fromEnv() {
    String flag = env(Contract.ENV_TLS);
    boolean tls = flag != null && switch (flag.toLowerCase(Locale.ROOT)) {
      case "1", "true", "yes" -> true;
      default -> false;
    };
    return new Security(env(Contract.ENV_TLS_CA), env(Contract.ENV_CLIENT_CERT), env(Contract.ENV_CLIENT_KEY),
        env(Contract.ENV_TOKEN), tls);
  }

  private static String env(String name) {
    String value = System.getenv(name);
    return value == null || value.isBlank() ? null : value.trim();
  }

  public boolean usesTls() {
    return tls || caFile != null || certFile != null;
  }

  /** The channel credentials of these settings (plaintext when TLS is off), with the token. */
  public ChannelCredentials credentials() {
    if ((certFile == null) != (keyFile == null)) {
      throw new IllegalArgumentException("a client certificate needs its key: set both "
          + Contract.ENV_CLIENT_CERT + " and " + Contract.ENV_CLIENT_KEY);
    }
    ChannelCredentials base = InsecureChannelCredentials.create();
    if (usesTls()) {
      try {
        TlsChannelCredentials.Builder builder = TlsChannelCredentials.newBuilder();
        if (caFile != null) {
          builder.trustManager(new File(caFile));
        }
        if (certFile != null) {
          builder.keyManager(new File(certFile), new File(keyFile));
        }
        base = builder.build();
      } catch (IOException e) {
        throw new UncheckedIOException("reading the TLS files (" + Contract.ENV_TLS_CA + ", "
            + Contract.ENV_CLIENT_CERT + ", " + Contract.ENV_CLIENT_KEY + ")", e);
      }
    }
    return token == null ? base : CompositeChannelCredentials.create(base, new BearerToken(token));
  }

  private static final class BearerToken extends CallCredentials {
    private static final Metadata.Key<String> AUTHORIZATION =
        Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private final String header;

    BearerToken(String token) {
      this.header = "Bearer " + token;
    }

    @Override
    public void applyRequestMetadata(RequestInfo info, Executor executor, MetadataApplier applier) {
      Metadata metadata = new Metadata();
      metadata.put(AUTHORIZATION, header);
      applier.apply(metadata);
    }
  }
}
