package org.pynenc.sidecar.wf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The local derivations agree with the shared vectors the Python reference wrote. */
class DerivationsTest {
  private static JsonObject vectors() throws IOException {
    Path file = Path.of(System.getProperty("user.dir"), "..", "..", "tests", "vectors", "derivations.json");
    return Json.tree(Files.readString(file, StandardCharsets.UTF_8)).getAsJsonObject();
  }

  @Test
  void namespaceMatchesTheVectors() throws IOException {
    assertEquals(vectors().get("uuid_namespace").getAsString(), Derivations.UUID_NAMESPACE.toString());
  }

  @Test
  void everyVectorDerivesAlike() throws IOException {
    int checked = 0;
    for (JsonElement element : vectors().getAsJsonArray("derivations")) {
      JsonObject c = element.getAsJsonObject();
      String scope = c.get("scope").getAsString();
      long sequence = c.get("sequence").getAsLong();
      String where = scope.substring(0, Math.min(20, scope.length())) + "#" + sequence;
      assertEquals(c.get("name").getAsString(), Derivations.name(scope, sequence), where);
      assertEquals(c.get("random_bits").getAsLong(), Derivations.randomBits(scope, sequence), where);
      assertEquals(c.get("random").getAsDouble(), Derivations.random(scope, sequence), 0.0, where);
      assertEquals(c.get("uuid").getAsString(), Derivations.uuid(scope, sequence), where);
      double r = Derivations.random(scope, sequence);
      assertTrue(r >= 0.0 && r < 1.0, where);
      checked++;
    }
    assertTrue(checked > 0, "no derivation vectors");
  }

  @Test
  void jsonKeepsNonAsciiAndHtmlCharactersAsIs() {
    assertEquals("{\"a\":\"ünï <&>\"}", Json.write(Map.of("a", "ünï <&>")));
    assertEquals("null", Json.write(null));
    assertFalse(Json.write(Map.of("x", 21)).contains("21.0"));
  }
}
