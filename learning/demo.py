"""Learning demo data for ``manage.py seed_demo`` (Northwind Retail).

``seed_learning(org, ...)`` runs after the feedback and audits demo data of the organization,
inside its ``tenant_context``:

* **Content**: one lesson per Northwind standard (40, six to seven per skill category), each a
  short "why it matters" and three steps, in English with a Spanish translation (the surveys are
  bilingual), tagged to its standard and skill category; a quiz with explanations on every second
  lesson; a library per skill category; three shopper lessons ending with the certification test.
* **Paths**: "New associate onboarding" (one lesson per skill category), "Mystery shopper
  certification" (the shopper lessons; it is both mystery-shopping programmes'
  ``certification_path``), and "Service recovery essentials".
* **Gap rules** on the six standards customers rate in the surveys, employee subject, with the
  default 10 % holdout (20 % on the two call-centre standards, which concern fewer people).
* **History** (~5,000 assignments at ``--scale 1``): gap triggers found at each employee's worst
  30-day stretch (the evidence is the real answers of that window), assigned or held out;
  completions and quiz attempts; held-out cases released after the cooldown; the onboarding path
  for every employee with certificates; manual assignments by the trainer and store managers
  (completed, in progress, overdue); the certification path completed by the certified shopper
  persona.
* **Before/after data**: after each treated case's completion, the employee's answers on the
  standard over the rule's window are raised (one set-based UPDATE) for the lessons that "work";
  "A checkout under three minutes" gets no lift, so the analytics page shows effective lessons and
  one ineffective one, against the held-out control group. The effect figures are computed by
  the analytics task, queued when the seed commits (and hourly from beat).

Like the other demo modules this is *history*: rows go in with ``bulk_create`` and no per-row
event (no LessonAssigned / LessonCompleted in the outbox, no xAPI statements). Everything comes
from the seed; dates are relative to the day of the run.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import random
import time
import zoneinfo
from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from audits.models import Certification, Program, ProgramKind, Shopper
from cem.models import Employee, Membership, Role, SkillCategory, Standard
from cem.principals import Actor
from feedback.models import Answer, Question
from feedback.selectors import GAP_TYPES, gap_scale
from learning import gaps
from learning.models import (
    Assignment,
    Audience,
    Completion,
    ContentStatus,
    GapRule,
    GapTrigger,
    LearningPath,
    Lesson,
    LessonSkillCategory,
    LessonStandard,
    LessonVersion,
    Library,
    LibraryLesson,
    PathCertificate,
    PathStep,
    Quiz,
    QuizAttempt,
    QuizQuestion,
)
from learning.quizzes import shuffled
from learning.rendering import render_markdown

logger = logging.getLogger(__name__)

# (standard code, title en, title es, why en, why es, steps en, steps es)
LESSONS = (
    # Greeting
    (
        "greet-within-10-seconds",
        "The 10-second welcome",
        "La bienvenida en 10 segundos",
        "Customers decide within seconds whether a store cares that they came in.",
        "Los clientes deciden en segundos si a la tienda le importa que hayan venido.",
        (
            "Look up from what you are doing as soon as someone comes in.",
            "Say hello within ten seconds, even if you are busy.",
            "If you are serving someone, nod and smile so the new customer knows they were seen.",
        ),
        (
            "Levanta la vista de lo que estés haciendo en cuanto alguien entre.",
            "Saluda en menos de diez segundos, aunque estés ocupado.",
            "Si estás atendiendo a alguien, asiente y sonríe para que el nuevo cliente sepa que lo viste.",
        ),
    ),
    (
        "greet-eye-contact-smile",
        "Eye contact and a real smile",
        "Contacto visual y una sonrisa sincera",
        "A greeting without eye contact sounds like a script; with it, it sounds like a welcome.",
        "Un saludo sin contacto visual suena a guion; con él, suena a bienvenida.",
        (
            "Stop moving and face the customer when you greet them.",
            "Make eye contact for a moment before you speak.",
            "Smile with your eyes, not only your mouth, and keep your tone warm.",
        ),
        (
            "Deja de moverte y ponte de frente al cliente al saludarlo.",
            "Mira al cliente a los ojos un momento antes de hablar.",
            "Sonríe también con la mirada y mantén un tono cálido.",
        ),
    ),
    (
        "greet-open-offer",
        "Open with an offer of help",
        "Empieza ofreciendo ayuda",
        '"Can I help you?" invites "No thanks"; an open offer starts a conversation.',
        '"¿Le puedo ayudar?" invita a decir "No, gracias"; una oferta abierta inicia una conversación.',
        (
            'Avoid yes/no openers such as "Can I help you?".',
            'Use an open line: "What brings you in today?" or "What are you shopping for?".',
            'Mention one thing you can do: "I can check sizes in the back for you."',
        ),
        (
            'Evita preguntas de sí o no como "¿Le puedo ayudar?".',
            'Usa una frase abierta: "¿Qué le trae hoy por aquí?" o "¿Qué está buscando?".',
            'Menciona algo concreto que puedes hacer: "Puedo buscarle su talla en el almacén."',
        ),
    ),
    (
        "greet-returning-customer",
        "Recognising regulars",
        "Reconocer a los clientes habituales",
        "Being recognised is the strongest reason loyal customers give for coming back.",
        "Sentirse reconocido es la razón más fuerte que dan los clientes fieles para volver.",
        (
            "Check the loyalty card or app at the till and use the customer's name.",
            "Remember one detail from the last visit and ask about it.",
            "Thank members for their loyalty, not just for today's purchase.",
        ),
        (
            "Mira la tarjeta o la app de fidelidad en caja y usa el nombre del cliente.",
            "Recuerda un detalle de la última visita y pregunta por él.",
            "Agradece a los socios su fidelidad, no solo la compra de hoy.",
        ),
    ),
    (
        "greet-acknowledge-queue",
        "Acknowledging people who are waiting",
        "Atender con la mirada a quien espera",
        "Waiting feels twice as long when nobody has acknowledged you.",
        "La espera parece el doble de larga cuando nadie te ha hecho caso.",
        (
            "Glance at the queue every minute while you serve.",
            'Tell waiting customers "I\'ll be with you in a moment".',
            "Call a colleague to open another till when more than three people wait.",
        ),
        (
            "Mira la fila cada minuto mientras atiendes.",
            'Di a quien espera "Enseguida estoy con usted".',
            "Llama a un compañero para abrir otra caja si esperan más de tres personas.",
        ),
    ),
    (
        "greet-phone-three-rings",
        "Answering the phone in three rings",
        "Contestar el teléfono en tres tonos",
        "A caller who waits hears a store that is too busy for them.",
        "Quien espera al teléfono percibe una tienda demasiado ocupada para atenderle.",
        (
            "Pick up within three rings; if you cannot, make sure someone else will.",
            'Say the store\'s name and your own: "Northwind Boston, this is Ana."',
            "Finish with what happens next, so the caller never hangs up unsure.",
        ),
        (
            "Contesta antes del tercer tono; si no puedes, asegúrate de que otro lo haga.",
            'Di el nombre de la tienda y el tuyo: "Northwind Boston, le atiende Ana."',
            "Termina diciendo qué pasará después, para que nadie cuelgue con dudas.",
        ),
    ),
    (
        "greet-chat-60-seconds",
        "A personal first reply in chat",
        "Una primera respuesta personal en el chat",
        "In chat, a minute of silence reads as nobody being there.",
        "En el chat, un minuto de silencio parece que no hay nadie.",
        (
            "Reply within 60 seconds, even if only to say you are looking into it.",
            "Greet by name and introduce yourself.",
            "Restate the question in your own words so the customer knows you read it.",
        ),
        (
            "Responde en menos de 60 segundos, aunque sea para decir que lo estás revisando.",
            "Saluda por su nombre y preséntate.",
            "Repite la pregunta con tus palabras para que el cliente sepa que la leíste.",
        ),
    ),
    # Product knowledge
    (
        "pk-features-benefits",
        "Features into benefits",
        "De características a beneficios",
        "Customers buy what a product does for them, not its specification sheet.",
        "Los clientes compran lo que el producto hace por ellos, no su ficha técnica.",
        (
            'Name the feature, then say "which means that…" and the benefit.',
            "Link the benefit to what this customer told you they need.",
            "Show it: let the customer hold, try or see the product working.",
        ),
        (
            'Nombra la característica y añade "lo que significa que…" y el beneficio.',
            "Relaciona el beneficio con lo que este cliente te dijo que necesita.",
            "Demuéstralo: deja que el cliente lo toque, lo pruebe o lo vea funcionar.",
        ),
    ),
    (
        "pk-stock-check",
        'Before you say "sold out"',
        'Antes de decir "agotado"',
        '"Sold out" is often wrong: the item is in the back, another store or online.',
        '"Agotado" a menudo no es cierto: está en el almacén, en otra tienda o en línea.',
        (
            "Check the stockroom and the handheld before answering.",
            "Look up nearby stores and online stock in the app.",
            "Offer to reserve, transfer or order it for home delivery.",
        ),
        (
            "Revisa el almacén y el terminal antes de responder.",
            "Consulta en la app el stock de tiendas cercanas y en línea.",
            "Ofrece reservarlo, traerlo de otra tienda o enviarlo a casa.",
        ),
    ),
    (
        "pk-compare-options",
        "Comparing options honestly",
        "Comparar opciones con honestidad",
        "Showing two options, with their trade-offs, is what makes advice trustworthy.",
        "Mostrar dos opciones con sus pros y contras es lo que hace creíble un consejo.",
        (
            "Offer at least two products that fit the need.",
            "Say plainly what each is better and worse at.",
            "Recommend one and explain why, including when the cheaper one is enough.",
        ),
        (
            "Ofrece al menos dos productos que encajen con la necesidad.",
            "Di con claridad en qué es mejor y peor cada uno.",
            "Recomienda uno y explica por qué, también cuando el más barato basta.",
        ),
    ),
    (
        "pk-current-promotions",
        "This week's offers and price matching",
        "Ofertas de la semana y igualación de precios",
        "A customer who finds an offer you did not mention feels cheated.",
        "Un cliente que descubre una oferta que no le mencionaste se siente engañado.",
        (
            "Read the promotions sheet at the start of every shift.",
            "Mention an offer when it applies to what the customer is buying.",
            "Know the price-match rules and apply them without making the customer argue.",
        ),
        (
            "Lee la hoja de promociones al empezar cada turno.",
            "Menciona la oferta cuando se aplique a lo que el cliente compra.",
            "Conoce las reglas de igualación de precios y aplícalas sin que el cliente tenga que discutir.",
        ),
    ),
    (
        "pk-care-warranty",
        "Care, warranty and returns terms",
        "Cuidado, garantía y devoluciones",
        "Most complaints about quality start with care instructions nobody explained.",
        "Muchas quejas de calidad empiezan con instrucciones de cuidado que nadie explicó.",
        (
            "Explain how to care for the product in one or two sentences.",
            "Say how long the warranty lasts and what it covers.",
            "Point out the returns period before the customer pays.",
        ),
        (
            "Explica en una o dos frases cómo cuidar el producto.",
            "Di cuánto dura la garantía y qué cubre.",
            "Indica el plazo de devolución antes de que el cliente pague.",
        ),
    ),
    (
        "pk-walk-to-product",
        "Walk, don't point",
        "Acompaña, no señales",
        "Walking a customer to the product turns a question into a conversation and a sale.",
        "Acompañar al cliente hasta el producto convierte una pregunta en una conversación y una venta.",
        (
            'Say "Let me show you" and walk with the customer.',
            "On the way, ask what they need it for.",
            "At the shelf, check size, colour or model with them before you leave.",
        ),
        (
            'Di "Le acompaño" y camina con el cliente.',
            "Por el camino, pregunta para qué lo necesita.",
            "En el estante, revisa con él talla, color o modelo antes de irte.",
        ),
    ),
    (
        "pk-find-out",
        "\"I don't know, but I'll find out\"",
        '"No lo sé, pero lo averiguo"',
        'A confident guess that turns out wrong costs more trust than an honest "let me check".',
        'Una respuesta inventada que resulta falsa cuesta más confianza que un sincero "déjeme comprobarlo".',
        (
            "Never guess about prices, compatibility or safety.",
            "Say you will find out, and tell the customer how long it will take.",
            "Come back with the answer, or with someone who has it.",
        ),
        (
            "Nunca adivines precios, compatibilidad o seguridad.",
            "Di que lo vas a averiguar y cuánto tardarás.",
            "Vuelve con la respuesta o con alguien que la tenga.",
        ),
    ),
    # Needs discovery
    (
        "nd-open-questions",
        "Two open questions first",
        "Primero, dos preguntas abiertas",
        "Recommending before asking is guessing; open questions find the real need.",
        "Recomendar sin preguntar es adivinar; las preguntas abiertas descubren la necesidad real.",
        (
            "Ask at least two questions that start with what, how, who or when.",
            "Listen to the whole answer before you pick up a product.",
            "Follow up on the detail the customer stressed most.",
        ),
        (
            "Haz al menos dos preguntas que empiecen por qué, cómo, quién o cuándo.",
            "Escucha la respuesta completa antes de tomar un producto.",
            "Profundiza en el detalle que el cliente más destacó.",
        ),
    ),
    (
        "nd-summarise-need",
        "Summarise the need back",
        "Resume la necesidad en voz alta",
        "A short summary proves you listened and catches misunderstandings early.",
        "Un resumen breve demuestra que escuchaste y detecta malentendidos a tiempo.",
        (
            'Say "So you\'re looking for… for… and it must…".',
            'Ask "Did I get that right?" and wait for the answer.',
            "Only then show the products that fit.",
        ),
        (
            'Di "Entonces busca… para… y tiene que…".',
            'Pregunta "¿Lo he entendido bien?" y espera la respuesta.',
            "Solo entonces muestra los productos que encajan.",
        ),
    ),
    (
        "nd-respect-budget",
        "Asking about budget, and respecting it",
        "Preguntar por el presupuesto y respetarlo",
        "Customers pushed above their budget buy less often and return more.",
        "Los clientes empujados por encima de su presupuesto compran menos y devuelven más.",
        (
            'Ask the budget naturally: "What range did you have in mind?".',
            "Start with options inside that range.",
            "Mention a dearer option only with a clear reason, and once.",
        ),
        (
            'Pregunta el presupuesto con naturalidad: "¿Qué rango de precio tenía pensado?".',
            "Empieza por opciones dentro de ese rango.",
            "Menciona una opción más cara solo con un motivo claro, y una sola vez.",
        ),
    ),
    (
        "nd-usage-occasion",
        "How and when will it be used?",
        "¿Cómo y cuándo lo va a usar?",
        "The same jacket is the right choice for a commute and the wrong one for a hike.",
        "La misma chaqueta es ideal para ir al trabajo y mala para una excursión.",
        (
            "Ask where, how often and by whom the product will be used.",
            "Ask about the occasion or the deadline.",
            "Use those answers to rule products in or out, and say so.",
        ),
        (
            "Pregunta dónde, con qué frecuencia y quién usará el producto.",
            "Pregunta por la ocasión o la fecha límite.",
            "Usa esas respuestas para descartar o elegir productos, y explícalo.",
        ),
    ),
    (
        "nd-appointment-shortlist",
        "Preparing a personal-shopping visit",
        "Preparar una cita de compra personal",
        "A customer who booked an appointment expects you to have done your homework.",
        "Quien reserva una cita espera que hayas preparado su visita.",
        (
            "Read the booking notes and the customer's profile the day before.",
            "Pull a shortlist of five to eight items in the right sizes.",
            "Reserve a fitting room and be at the door when the customer arrives.",
        ),
        (
            "Lee las notas de la reserva y el perfil del cliente el día anterior.",
            "Prepara una selección de cinco a ocho artículos en las tallas correctas.",
            "Reserva un probador y espera al cliente en la entrada.",
        ),
    ),
    (
        "nd-offer-assistance",
        "Spotting customers who need help",
        "Detectar a quien necesita ayuda",
        "Many customers will not ask; they leave instead.",
        "Muchos clientes no piden ayuda; simplemente se van.",
        (
            "Watch for signs: looking around, comparing labels, holding two items.",
            'Approach with an observation: "Those two are quite different, want a hand?".',
            "If they decline, tell them where you will be and check back later.",
        ),
        (
            "Fíjate en las señales: mirar alrededor, comparar etiquetas, sostener dos artículos.",
            'Acércate con una observación: "Esos dos son bastante distintos, ¿le ayudo?".',
            "Si no quiere ayuda, dile dónde estarás y vuelve a pasar más tarde.",
        ),
    ),
    (
        "nd-record-preferences",
        "Recording preferences, with consent",
        "Registrar preferencias, con permiso",
        "Preferences on file make the next visit faster; without consent they break trust and the law.",
        "Las preferencias guardadas agilizan la próxima visita; sin permiso rompen la confianza y la ley.",
        (
            "Ask whether the customer would like you to save their sizes and favourite brands.",
            "Record only what they agreed to, in the profile, not on paper.",
            "Tell them how to see or delete what is saved.",
        ),
        (
            "Pregunta si el cliente quiere que guardes sus tallas y marcas favoritas.",
            "Registra solo lo que aceptó, en el perfil, no en papel.",
            "Explícale cómo ver o borrar lo que se guarda.",
        ),
    ),
    # Closing
    (
        "cl-confirm-choice",
        "Confirming the choice",
        "Confirmar la elección",
        'A quick check before paying prevents most "it wasn\'t what I needed" returns.',
        "Una comprobación rápida antes de pagar evita la mayoría de devoluciones por "
        '"no era lo que necesitaba".',
        (
            "Repeat the need and show how the chosen item meets it.",
            "Check size, colour and compatibility one last time.",
            'Ask "Is there anything that would make you hesitate?".',
        ),
        (
            "Repite la necesidad y muestra cómo la cubre el artículo elegido.",
            "Revisa por última vez talla, color y compatibilidad.",
            'Pregunta "¿Hay algo que le haga dudar?".',
        ),
    ),
    (
        "cl-complementary-item",
        "One relevant extra, no pressure",
        "Un complemento útil, sin presión",
        "The right extra saves the customer a second trip; a pushy one spoils the sale.",
        "El complemento adecuado ahorra al cliente otro viaje; uno insistente estropea la venta.",
        (
            "Suggest one item that completes the purchase (batteries, a case, care spray).",
            "Say why it is useful for this customer.",
            'Accept "no" the first time, cheerfully.',
        ),
        (
            "Sugiere un artículo que complete la compra (pilas, una funda, un spray de cuidado).",
            "Di por qué le es útil a este cliente.",
            'Acepta un "no" a la primera, con buena cara.',
        ),
    ),
    (
        "cl-fast-checkout",
        "A checkout under three minutes",
        "Cobrar en menos de tres minutos",
        "The last minutes of a visit are the ones customers remember; a slow till erases a good visit.",
        "Los últimos minutos de la visita son los que se recuerdan; una caja lenta borra una buena visita.",
        (
            "Keep bags, receipt paper and change ready before the rush.",
            "Scan while you talk, and ask for the loyalty card early.",
            "Call for a price check by radio instead of leaving the till.",
        ),
        (
            "Ten listas bolsas, papel de tique y cambio antes de la hora punta.",
            "Escanea mientras hablas y pide la tarjeta de fidelidad al principio.",
            "Pide la comprobación de precios por radio en lugar de dejar la caja.",
        ),
    ),
    (
        "cl-returns-period",
        "Returns period and receipt options",
        "Plazo de devolución y opciones de tique",
        "Customers who know the returns terms buy with confidence.",
        "Los clientes que conocen las condiciones de devolución compran con confianza.",
        (
            "State the returns period in one sentence at the till.",
            "Offer a gift receipt when the item may be a present.",
            "Offer an e-receipt so the proof of purchase cannot get lost.",
        ),
        (
            "Indica el plazo de devolución en una frase en la caja.",
            "Ofrece tique regalo si el artículo puede ser un regalo.",
            "Ofrece el tique electrónico para que el comprobante no se pierda.",
        ),
    ),
    (
        "cl-loyalty-offer",
        "Offering the loyalty programme",
        "Ofrecer el programa de fidelidad",
        "Members come back more often, and the offer is a service when it saves money today.",
        "Los socios vuelven más, y la oferta es un servicio cuando ahorra dinero hoy.",
        (
            "Ask non-members if they would like today's member price.",
            "Explain the one benefit that matters to this customer.",
            "Sign them up in under a minute with the app, or let it go.",
        ),
        (
            "Pregunta a quien no es socio si quiere el precio de socio de hoy.",
            "Explica el beneficio que más le importa a este cliente.",
            "Dalo de alta en menos de un minuto con la app, o déjalo estar.",
        ),
    ),
    (
        "cl-thank-and-invite",
        "Thank and invite back",
        "Agradecer e invitar a volver",
        "A personal thank-you is the last impression of the visit.",
        "Un agradecimiento personal es la última impresión de la visita.",
        (
            "Hand over the bag and receipt, looking at the customer.",
            "Thank them by name if you know it.",
            'Invite them back with something specific: "The new range arrives Friday."',
        ),
        (
            "Entrega la bolsa y el tique mirando al cliente.",
            "Da las gracias por su nombre si lo sabes.",
            'Invita a volver con algo concreto: "La nueva colección llega el viernes."',
        ),
    ),
    # Complaint handling
    (
        "ch-listen-fully",
        "Let the customer finish",
        "Deja terminar al cliente",
        "Interrupting an upset customer makes the complaint longer, not shorter.",
        "Interrumpir a un cliente molesto alarga la queja en lugar de acortarla.",
        (
            "Let the customer tell the whole story without interrupting.",
            'Show you are listening: nod, take notes, say "I see".',
            "Ask one clarifying question, then summarise what happened.",
        ),
        (
            "Deja que el cliente cuente toda la historia sin interrumpir.",
            'Demuestra que escuchas: asiente, toma notas, di "entiendo".',
            "Haz una pregunta para aclarar y luego resume lo ocurrido.",
        ),
    ),
    (
        "ch-apologise",
        "A sincere apology",
        "Una disculpa sincera",
        "Apologising is not admitting fault; it is acknowledging how the customer feels.",
        "Disculparse no es admitir culpa; es reconocer cómo se siente el cliente.",
        (
            "Say sorry for the experience in your own words.",
            'Name the impact: "You made a trip for nothing, that\'s frustrating."',
            'Avoid "but" and avoid blaming colleagues, systems or suppliers.',
        ),
        (
            "Pide perdón por la experiencia con tus propias palabras.",
            'Nombra el impacto: "Ha venido para nada, es frustrante."',
            'Evita el "pero" y no culpes a compañeros, sistemas ni proveedores.',
        ),
    ),
    (
        "ch-own-the-problem",
        "Owning the problem",
        "Hacerse cargo del problema",
        "Every hand-over makes the customer start again; ownership ends the runaround.",
        "Cada traspaso obliga al cliente a empezar de nuevo; hacerse cargo termina el peloteo.",
        (
            'Say "I\'ll take care of this" and give your name.',
            "Do everything within your authority yourself.",
            "If someone else must act, stay with the customer until they do.",
        ),
        (
            'Di "Yo me encargo" y da tu nombre.',
            "Haz tú mismo todo lo que esté a tu alcance.",
            "Si otra persona tiene que actuar, quédate con el cliente hasta que lo haga.",
        ),
    ),
    (
        "ch-resolve-first-contact",
        "Solving it the first time",
        "Resolverlo a la primera",
        "A problem solved on the spot often leaves the customer more loyal than before.",
        "Un problema resuelto en el momento suele dejar al cliente más fiel que antes.",
        (
            "Know your authority: refunds, exchanges and goodwill up to your limit.",
            "Offer a fix before the customer has to ask for one.",
            "Check the fix works before the customer leaves.",
        ),
        (
            "Conoce tu margen: reembolsos, cambios y gestos comerciales hasta tu límite.",
            "Ofrece una solución antes de que el cliente la pida.",
            "Comprueba que la solución funciona antes de que el cliente se vaya.",
        ),
    ),
    (
        "ch-consistent-returns",
        "Applying the returns policy consistently",
        "Aplicar la política de devoluciones por igual",
        "Customers compare notes; inconsistent answers feel unfair even when they are generous.",
        "Los clientes comparan; las respuestas desiguales parecen injustas aunque sean generosas.",
        (
            "Check the policy, not your memory, for unusual cases.",
            "Explain the rule and the reason behind it.",
            "When you make an exception, record it so colleagues can follow it.",
        ),
        (
            "Consulta la política, no tu memoria, en los casos poco habituales.",
            "Explica la regla y el motivo que hay detrás.",
            "Cuando hagas una excepción, regístrala para que tus compañeros la conozcan.",
        ),
    ),
    (
        "ch-warm-escalation",
        "A warm hand-over",
        "Un traspaso cercano",
        "Being escalated should feel like progress, not like being passed on.",
        "Que te pasen con un superior debe sentirse como un avance, no como un rechazo.",
        (
            "Explain why a manager is the right person, and that you will introduce them.",
            "Brief the manager in front of the customer so nobody repeats the story.",
            "Say goodbye and thank the customer for their patience.",
        ),
        (
            "Explica por qué el encargado es la persona adecuada y que tú lo presentarás.",
            "Informa al encargado delante del cliente para que nadie repita la historia.",
            "Despídete y agradece al cliente su paciencia.",
        ),
    ),
    (
        "ch-agree-next-step",
        "Agreeing the next step",
        "Acordar el siguiente paso",
        "Uncertainty after a complaint feels worse than the original problem.",
        "La incertidumbre tras una queja se vive peor que el problema original.",
        (
            "Say exactly what will happen next and who will do it.",
            "Give a time-frame you can keep.",
            "Write it down for the customer with a reference number.",
        ),
        (
            "Di exactamente qué pasará y quién lo hará.",
            "Da un plazo que puedas cumplir.",
            "Apúntalo para el cliente con un número de referencia.",
        ),
    ),
    # Follow-up
    (
        "fu-callback-on-time",
        "Calling back when you said you would",
        "Devolver la llamada a la hora prometida",
        "A late callback breaks a promise twice: the problem and the call.",
        "Una llamada tardía rompe dos promesas: la del problema y la de la llamada.",
        (
            "Put every promised callback in the shared calendar at once.",
            "Call at the agreed time, even if you have no news yet.",
            "If you cannot call, ask a colleague and tell them the context.",
        ),
        (
            "Anota cada llamada prometida en el calendario compartido al momento.",
            "Llama a la hora acordada, aunque aún no tengas novedades.",
            "Si no puedes llamar, pídeselo a un compañero y cuéntale el contexto.",
        ),
    ),
    (
        "fu-order-updates",
        "Keeping special-order customers informed",
        "Informar a quien hizo un pedido especial",
        "Customers should never have to chase us for news about their order.",
        "El cliente nunca debería tener que perseguirnos para saber de su pedido.",
        (
            "Send an update when the order ships and when it arrives.",
            "Tell the customer at once about any delay, with a new date.",
            "Offer an alternative if the delay is long.",
        ),
        (
            "Envía un aviso cuando el pedido salga y cuando llegue.",
            "Informa enseguida de cualquier retraso, con una nueva fecha.",
            "Ofrece una alternativa si el retraso es largo.",
        ),
    ),
    (
        "fu-complaint-check",
        "Checking back after a complaint",
        "Comprobar después de una queja",
        "A call two days later turns a fixed problem into a memorable recovery.",
        "Una llamada dos días después convierte un problema resuelto en una recuperación memorable.",
        (
            "Call within 48 hours of resolving the complaint.",
            "Ask whether the fix worked and whether anything is still open.",
            "Log the answer in the case.",
        ),
        (
            "Llama en las 48 horas siguientes a resolver la queja.",
            "Pregunta si la solución funcionó y si queda algo pendiente.",
            "Registra la respuesta en el caso.",
        ),
    ),
    (
        "fu-thank-you-note",
        "A personal thank-you",
        "Un agradecimiento personal",
        "A handwritten note after a big purchase is remembered far longer than a discount.",
        "Una nota escrita a mano tras una compra importante se recuerda mucho más que un descuento.",
        (
            "Write a short note within a week of a high-value purchase.",
            "Mention the product and wish them well with it.",
            "Sign with your name and the store's number.",
        ),
        (
            "Escribe una nota breve en la semana siguiente a una compra importante.",
            "Menciona el producto y deséale que lo disfrute.",
            "Firma con tu nombre y el teléfono de la tienda.",
        ),
    ),
    (
        "fu-service-reminders",
        "Offering reminders",
        "Ofrecer recordatorios",
        "Alterations and repairs forgotten in the back room become complaints.",
        "Los arreglos y reparaciones olvidados en el almacén acaban en quejas.",
        (
            "Offer a text or email reminder for every alteration, repair or collection.",
            "Confirm the contact details and the preferred channel.",
            "Check the reminder list at the start of each shift.",
        ),
        (
            "Ofrece un recordatorio por SMS o correo para cada arreglo, reparación o recogida.",
            "Confirma los datos de contacto y el canal preferido.",
            "Revisa la lista de recordatorios al empezar cada turno.",
        ),
    ),
    (
        "fu-log-outcome",
        "Logging the outcome",
        "Registrar el resultado",
        "If the outcome is not logged, the next colleague starts from zero.",
        "Si el resultado no se registra, el siguiente compañero empieza de cero.",
        (
            "Log every follow-up the same day, with what was agreed.",
            "Close the case only when the customer confirms.",
            "Note anything the store could do better next time.",
        ),
        (
            "Registra cada seguimiento el mismo día, con lo acordado.",
            "Cierra el caso solo cuando el cliente lo confirme.",
            "Anota lo que la tienda podría hacer mejor la próxima vez.",
        ),
    ),
)

# Bad practices used as wrong answers (en, es).
BAD_PRACTICES = (
    ("Wait for the customer to come to you.", "Esperar a que el cliente venga a ti."),
    (
        "Finish your current task before greeting anyone.",
        "Terminar la tarea actual antes de saludar a nadie.",
    ),
    ("Recommend the most expensive item first.", "Recomendar primero el artículo más caro."),
    ("Point to the aisle and carry on working.", "Señalar el pasillo y seguir trabajando."),
    ("Tell the customer the item is sold out without checking.", "Decir que está agotado sin comprobarlo."),
    ("Explain which colleague caused the problem.", "Explicar qué compañero causó el problema."),
    ("Promise a callback without saying when.", "Prometer una llamada sin decir cuándo."),
    ("Interrupt to save time.", "Interrumpir para ahorrar tiempo."),
    ("Insist after the customer says no.", "Insistir después de que el cliente diga que no."),
    ("Leave the till to check a price yourself.", "Dejar la caja para comprobar un precio."),
)

SHOPPER_LESSONS = (
    (
        "How a mystery shopping visit works",
        "Cómo funciona una visita de cliente misterioso",
        "A visit is only useful if every shopper does the same thing, so stores are compared fairly.",
        "Una visita solo es útil si todos los evaluadores hacen lo mismo, "
        "para comparar las tiendas con justicia.",
        (
            "Read the scenario and the form before you leave home.",
            "Visit only within the job's window, at the location named on the job.",
            "Behave like an ordinary customer and never say you are auditing.",
        ),
        (
            "Lee el escenario y el formulario antes de salir de casa.",
            "Visita solo dentro de la ventana del trabajo, en el local indicado.",
            "Compórtate como un cliente normal y nunca digas que estás evaluando.",
        ),
    ),
    (
        "Observing without being noticed",
        "Observar sin llamar la atención",
        "Staff who spot a shopper behave differently, and the visit no longer shows the real service.",
        "Si el personal detecta al evaluador actúa distinto, y la visita deja de reflejar el servicio real.",
        (
            "Note times with your phone's clock, discreetly, as any customer checking messages would.",
            "Remember names from name badges; do not ask staff for their full name.",
            "Take the photos the form asks for (for example the receipt) after you leave the counter.",
        ),
        (
            "Anota las horas con el reloj del móvil, con discreción, como quien mira sus mensajes.",
            "Recuerda los nombres de las identificaciones; no pidas al personal su nombre completo.",
            "Haz las fotos que pide el formulario (por ejemplo el tique) al alejarte del mostrador.",
        ),
    ),
    (
        "Writing a factual visit report",
        "Redactar un informe objetivo de la visita",
        "Reviewers approve reports that describe what happened, with times, not opinions.",
        "Los revisores aprueban informes que describen lo ocurrido, con horas, no opiniones.",
        (
            "Fill in the form within 24 hours, while the visit is fresh.",
            "Describe what was said and done, with times, instead of how you felt about it.",
            "Answer every required item, and upload the receipt before you submit.",
        ),
        (
            "Completa el formulario en menos de 24 horas, con la visita reciente.",
            "Describe lo que se dijo y se hizo, con horas, en vez de cómo te sentiste.",
            "Responde a todos los puntos obligatorios y sube el tique antes de enviar.",
        ),
    ),
)

# (kind, en, es, [(key, en, es, correct)], explanation en, explanation es)
CERTIFICATION_QUESTIONS = (
    (
        "single",
        "When may you make the visit?",
        "¿Cuándo puedes hacer la visita?",
        (
            ("a", "Only within the job's visit window", "Solo dentro de la ventana del trabajo", True),
            ("b", "Any time that suits you", "Cuando te venga bien", False),
            ("c", "The day after the window closes", "El día después de que cierre la ventana", False),
        ),
        "Visits outside the window are not comparable with the others and are rejected.",
        "Las visitas fuera de la ventana no son comparables y se rechazan.",
    ),
    (
        "true_false",
        "You may tell staff you are a mystery shopper if they ask you directly.",
        "Puedes decir al personal que eres cliente misterioso si te lo preguntan directamente.",
        (("true", "True", "Verdadero", False), ("false", "False", "Falso", True)),
        "Never reveal the audit: answer as an ordinary customer would.",
        "Nunca reveles la evaluación: responde como lo haría un cliente normal.",
    ),
    (
        "single",
        "How should you record how long you waited?",
        "¿Cómo debes registrar cuánto esperaste?",
        (
            ("a", "Estimate it afterwards", "Calcularlo después", False),
            (
                "b",
                "Note the time discreetly on arrival and when you were served",
                "Anotar con discreción la hora de llegada y la de atención",
                True,
            ),
            ("c", "Ask the staff how long it was", "Preguntar al personal cuánto fue", False),
        ),
        "Times noted during the visit are what reviewers can check against the receipt.",
        "Las horas anotadas durante la visita son lo que el revisor puede cotejar con el tique.",
    ),
    (
        "multi",
        "Which of these belong in a visit report? (choose all that apply)",
        "¿Qué debe incluir un informe de visita? (elige todas las correctas)",
        (
            ("a", "What the staff said and did", "Lo que el personal dijo e hizo", True),
            ("b", "The times of arrival and service", "Las horas de llegada y de atención", True),
            ("c", "Your opinion of the brand's prices", "Tu opinión sobre los precios de la marca", False),
        ),
        "Reports describe facts with times; opinions about the brand are not part of the audit.",
        "Los informes describen hechos con horas; "
        "las opiniones sobre la marca no forman parte de la evaluación.",
    ),
    (
        "true_false",
        "The receipt photo should be taken after you leave the counter.",
        "La foto del tique debe hacerse después de alejarte del mostrador.",
        (("true", "True", "Verdadero", True), ("false", "False", "Falso", False)),
        "Photographing at the counter gives you away.",
        "Hacer la foto en el mostrador te delata.",
    ),
)

SKILL_OF_PREFIX = {
    "greet": "Greeting",
    "pk": "Product knowledge",
    "nd": "Needs discovery",
    "cl": "Closing",
    "ch": "Complaint handling",
    "fu": "Follow-up",
}
ONBOARDING = "New associate onboarding"
CERTIFICATION = "Mystery shopper certification"
RECOVERY = "Service recovery essentials"
ONBOARDING_CODES = (
    "greet-within-10-seconds",
    "pk-features-benefits",
    "nd-open-questions",
    "cl-fast-checkout",
    "ch-listen-fully",
    "fu-callback-on-time",
)
# (standard code, lift after completion as a share of the answer scale, holdout share). The
# checkout lesson gets no lift: the demo's ineffective lesson.
RULES = (
    ("greet-open-offer", 0.14, "0.100"),
    ("pk-features-benefits", 0.12, "0.100"),
    ("cl-fast-checkout", 0.0, "0.100"),
    ("ch-listen-fully", 0.15, "0.200"),
    ("greet-phone-three-rings", 0.12, "0.200"),
)
RULE_THRESHOLD = Decimal(75)
RULE_WINDOW = 30
RULE_MIN_POINTS = 3
COOLDOWN = 28
TARGET_ASSIGNMENTS = 5000
HISTORY_DAYS = 175


def scaled(base: int, scale: float) -> int:
    return max(1, round(base * scale))


def lesson_body(why: str, steps, *, why_label: str) -> str:
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    return f"**{why_label}** {why}\n\n{numbered}\n"


class LearningSeeder:
    def __init__(self, org, *, seed: int, scale: float, actor: Actor | None = None, step=None):
        self.org, self.scale = org, scale
        self.rng = random.Random(f"{seed}-learning")
        self.actor = actor or Actor.system()
        self.step = step or (lambda label, started: None)
        # Anchored at the start of the day, like the feedback it reads (answers are placed by day
        # before midnight): a wall-clock anchor moved the 30-day windows by the seconds between
        # two runs, so an answer near a window's edge could flip a trigger or a lift and two
        # seeds of the same day differed.
        tz = zoneinfo.ZoneInfo(org.time_zone)
        self.now = dt.datetime.combine(timezone.now().astimezone(tz).date(), dt.time.min, tzinfo=tz)
        self.counts: dict[str, int] = {}
        self.open_keys: set[tuple] = set()
        self.attempt_numbers: dict[tuple, int] = defaultdict(int)
        self.assignments: list[Assignment] = []
        self.lifts: list[tuple] = []  # (standard id, employee id, from, to, delta, high)

    # --- content ------------------------------------------------------------------------------

    def content(self, standards: dict, skills: dict) -> None:
        org_id, created = self.org.pk, self.now - dt.timedelta(days=200)
        rows = []
        for code, title, title_es, why, why_es, steps, steps_es in LESSONS:
            rows.append(
                (
                    code,
                    Lesson(
                        organization_id=org_id,
                        title=title,
                        summary=why[:300],
                        estimated_minutes=self.rng.choice((4, 5, 6, 8)),
                        audience=Audience.EMPLOYEES,
                        status=ContentStatus.PUBLISHED,
                        created_by_id=self.trainer_id,
                    ),
                    (title_es, why, why_es, steps, steps_es),
                )
            )
        for title, title_es, why, why_es, steps, steps_es in SHOPPER_LESSONS:
            lesson = Lesson(
                organization_id=org_id,
                title=title,
                summary=why[:300],
                estimated_minutes=6,
                audience=Audience.SHOPPERS,
                status=ContentStatus.PUBLISHED,
                created_by_id=self.trainer_id,
            )
            rows.append((None, lesson, (title_es, why, why_es, steps, steps_es)))
        Lesson.objects.bulk_create([r[1] for r in rows])
        versions = []
        for _code, lesson, (title_es, why, why_es, steps, steps_es) in rows:
            body = lesson_body(why, steps, why_label="Why it matters.")
            body_es = lesson_body(why_es, steps_es, why_label="Por qué importa.")
            versions.append(
                LessonVersion(
                    organization_id=org_id,
                    lesson=lesson,
                    number=1,
                    title=lesson.title,
                    body=body,
                    body_html=render_markdown(body),
                    translations={
                        "es": {"title": title_es, "body": body_es, "body_html": render_markdown(body_es)}
                    },
                    estimated_minutes=lesson.estimated_minutes,
                    published_at=created,
                )
            )
        LessonVersion.objects.bulk_create(versions)
        for (_c, lesson, _t), version in zip(rows, versions, strict=True):
            lesson.current_version = version
        Lesson.objects.bulk_update([r[1] for r in rows], ["current_version"])
        self.lessons = {code: lesson for code, lesson, _ in rows if code}
        self.shopper_lessons = [lesson for code, lesson, _ in rows if code is None]
        self.texts = {lesson.pk: t for _c, lesson, t in rows}
        LessonStandard.objects.bulk_create(
            [
                LessonStandard(organization_id=org_id, lesson=lesson, standard=standards[code])
                for code, lesson in self.lessons.items()
                if code in standards
            ]
        )
        LessonSkillCategory.objects.bulk_create(
            [
                LessonSkillCategory(
                    organization_id=org_id,
                    lesson=lesson,
                    skill_category=skills[SKILL_OF_PREFIX[code.split("-")[0]]],
                )
                for code, lesson in self.lessons.items()
                if SKILL_OF_PREFIX[code.split("-")[0]] in skills
            ]
        )
        self.quizzes()
        libraries = []
        for name, skill in skills.items():
            libraries.append(
                (
                    Library(
                        organization_id=org_id,
                        name=f"{name} library",
                        description=f"Lessons on {name.lower()}: {skill.description}",
                        skill_category=skill,
                    ),
                    [le for c, le in self.lessons.items() if SKILL_OF_PREFIX[c.split("-")[0]] == name],
                )
            )
        libraries.append(
            (
                Library(
                    organization_id=org_id,
                    name="Mystery shopping",
                    description="How our mystery shoppers visit, observe and report.",
                ),
                self.shopper_lessons,
            )
        )
        Library.objects.bulk_create([lib for lib, _ in libraries])
        LibraryLesson.objects.bulk_create(
            [
                LibraryLesson(organization_id=org_id, library=lib, lesson=lesson)
                for lib, lessons in libraries
                for lesson in lessons
            ]
        )
        self.counts.update(lessons=len(rows), libraries=len(libraries))

    def quizzes(self) -> None:
        org_id = self.org.pk
        quizzes, questions = [], []
        for i, (_code, lesson) in enumerate(self.lessons.items()):
            if i % 2:
                continue
            title_es, why, why_es, steps, steps_es = self.texts[lesson.pk]
            quiz = Quiz(
                organization_id=org_id,
                lesson=lesson,
                title=f"Check: {lesson.title}",
                pass_mark=80,
                attempts_allowed=3,
                status=ContentStatus.PUBLISHED,
            )
            quizzes.append(quiz)
            bad = [BAD_PRACTICES[(i + k) % len(BAD_PRACTICES)] for k in range(3)]
            questions.append(
                QuizQuestion(
                    organization_id=org_id,
                    quiz=quiz,
                    position=1,
                    kind=QuizQuestion.Kind.SINGLE,
                    text=f"Which of these is part of “{lesson.title}”?",
                    choices=[
                        {"key": "a", "text": steps[0], "correct": True},
                        {"key": "b", "text": bad[0][0], "correct": False},
                        {"key": "c", "text": bad[1][0], "correct": False},
                    ],
                    explanation=why,
                    translations={
                        "es": {
                            "text": f"¿Cuál de estas acciones forma parte de «{title_es}»?",
                            "choices": {"a": steps_es[0], "b": bad[0][1], "c": bad[1][1]},
                            "explanation": why_es,
                        }
                    },
                )
            )
            questions.append(
                QuizQuestion(
                    organization_id=org_id,
                    quiz=quiz,
                    position=2,
                    kind=QuizQuestion.Kind.TRUE_FALSE,
                    text=f"True or false: {steps[1]}",
                    choices=[
                        {"key": "true", "text": "True", "correct": True},
                        {"key": "false", "text": "False", "correct": False},
                    ],
                    explanation=f"True: it is the second step of the lesson. {why}",
                    translations={
                        "es": {
                            "text": f"¿Verdadero o falso? {steps_es[1]}",
                            "choices": {"true": "Verdadero", "false": "Falso"},
                            "explanation": f"Verdadero: es el segundo paso de la lección. {why_es}",
                        }
                    },
                )
            )
            questions.append(
                QuizQuestion(
                    organization_id=org_id,
                    quiz=quiz,
                    position=3,
                    kind=QuizQuestion.Kind.TRUE_FALSE,
                    text=f"True or false: a good practice is to {bad[2][0][0].lower()}{bad[2][0][1:]}",
                    choices=[
                        {"key": "true", "text": "True", "correct": False},
                        {"key": "false", "text": "False", "correct": True},
                    ],
                    explanation=f"False: instead, {steps[2][0].lower()}{steps[2][1:]}",
                    translations={
                        "es": {
                            "text": "¿Verdadero o falso? Una buena práctica es "
                            f"{bad[2][1][0].lower()}{bad[2][1][1:]}",
                            "choices": {"true": "Verdadero", "false": "Falso"},
                            "explanation": f"Falso: en su lugar, {steps_es[2][0].lower()}{steps_es[2][1:]}",
                        }
                    },
                )
            )
        cert_lesson = self.shopper_lessons[-1]
        cert_quiz = Quiz(
            organization_id=org_id,
            lesson=cert_lesson,
            title="Mystery shopper certification test",
            pass_mark=80,
            attempts_allowed=3,
            status=ContentStatus.PUBLISHED,
        )
        quizzes.append(cert_quiz)
        for position, (kind, en, es, choices, expl, expl_es) in enumerate(CERTIFICATION_QUESTIONS, 1):
            questions.append(
                QuizQuestion(
                    organization_id=org_id,
                    quiz=cert_quiz,
                    position=position,
                    kind=kind,
                    text=en,
                    choices=[{"key": k, "text": t, "correct": ok} for k, t, _es, ok in choices],
                    explanation=expl,
                    translations={
                        "es": {
                            "text": es,
                            "choices": {k: t_es for k, _t, t_es, _ok in choices},
                            "explanation": expl_es,
                        }
                    },
                )
            )
        Quiz.objects.bulk_create(quizzes)
        for q in questions:
            q.quiz_id = q.quiz.pk
        QuizQuestion.objects.bulk_create(questions)
        self.quiz_of = {quiz.lesson_id: quiz for quiz in quizzes}
        snapshot = defaultdict(list)
        for q in questions:
            snapshot[q.quiz_id].append(
                {
                    "question_id": q.pk,
                    "position": q.position,
                    "kind": q.kind,
                    "text": q.text,
                    "choices": [
                        {"key": c["key"], "text": c["text"], "correct": c["correct"]} for c in q.choices
                    ],
                    "explanation": q.explanation,
                }
            )
        self.snapshots = dict(snapshot)
        self.counts.update(quizzes=len(quizzes), questions=len(questions))

    def make_paths(self) -> None:
        org_id = self.org.pk
        specs = (
            (
                ONBOARDING,
                "Your first weeks: one lesson from each of our six service skills.",
                Audience.EMPLOYEES,
                [self.lessons[c] for c in ONBOARDING_CODES],
            ),
            (
                CERTIFICATION,
                "Certifies shoppers for our mystery-shopping programmes: "
                "the visit, discretion and the report, "
                "with a final test.",
                Audience.SHOPPERS,
                self.shopper_lessons,
            ),
            (
                RECOVERY,
                "Everything about turning a complaint around, from listening to checking back.",
                Audience.EMPLOYEES,
                [le for c, le in self.lessons.items() if c.startswith(("ch-", "fu-complaint"))],
            ),
        )
        self.paths = {}
        for name, description, audience, lessons in specs:
            self.paths[name] = (
                LearningPath(
                    organization_id=org_id,
                    name=name,
                    description=description,
                    audience=audience,
                    status=ContentStatus.PUBLISHED,
                ),
                lessons,
            )
        LearningPath.objects.bulk_create([p for p, _ in self.paths.values()])
        PathStep.objects.bulk_create(
            [
                PathStep(organization_id=org_id, path=path, lesson=lesson, position=i)
                for path, lessons in self.paths.values()
                for i, lesson in enumerate(lessons, 1)
            ]
        )
        # Shoppers certify for mystery shopping through the certification path (audits.handlers).
        Program.objects.filter(kind=ProgramKind.MYSTERY_SHOP).update(
            certification_path=self.paths[CERTIFICATION][0]
        )
        self.counts["paths"] = len(self.paths)

    # --- history ------------------------------------------------------------------------------

    def when(self, days_ago_from: float, days_ago_to: float) -> dt.datetime:
        return self.now - dt.timedelta(days=self.rng.uniform(days_ago_to, days_ago_from))

    def learner(self, employee) -> dict:
        return {
            "employee_id": employee.pk,
            "location_id": employee.current_location_id,
            "team_id": employee.current_team_id,
            "role": employee.role,
        }

    def add(
        self,
        *,
        lesson=None,
        path=None,
        employee=None,
        user_id=None,
        assigned_at,
        due_days,
        source,
        reason,
        completed_at=None,
        progress_steps=0,
        **fields,
    ) -> Assignment | None:
        """One assignment (completed when ``completed_at``), unless it would be a second open one."""
        if completed_at is not None and completed_at >= self.now:
            completed_at = None
        key = (
            employee.pk if employee else None,
            user_id,
            lesson.pk if lesson else None,
            path.pk if path else None,
        )
        if completed_at is None:
            if key in self.open_keys:
                return None
            self.open_keys.add(key)
        steps = self.paths[path.name][1] if path is not None else []
        a = Assignment(
            organization_id=self.org.pk,
            lesson=lesson,
            path=path,
            user_id=user_id,
            source=source,
            reason=reason[:400],
            assigned_at=assigned_at,
            due_at=assigned_at + dt.timedelta(days=due_days),
            **(self.learner(employee) if employee else {}),
            **fields,
        )
        if completed_at is not None:
            a.status, a.completed_at, a.progress = Assignment.Status.COMPLETED, completed_at, 100
            a.started_at = completed_at - dt.timedelta(minutes=self.rng.randint(5, 40))
            a.completed_lesson_ids = [le.pk for le in steps]
        else:
            done = steps[:progress_steps]
            a.completed_lesson_ids = [le.pk for le in done]
            if done or self.rng.random() < 0.35:
                a.status = Assignment.Status.IN_PROGRESS
                a.started_at = assigned_at + dt.timedelta(hours=self.rng.uniform(2, 48))
                a.progress = int(len(done) * 100 / len(steps)) if steps else self.rng.choice((25, 50, 75))
        a._learner_name = employee.name if employee else ""
        self.assignments.append(a)
        return a

    def gap_history(self, standards: dict) -> None:
        org_id = self.org.pk
        rules = []
        for code, lift, holdout in RULES:
            if code not in standards or code not in self.lessons:
                continue
            lesson = self.lessons[code]
            rule = GapRule(
                organization_id=org_id,
                name=f"Low {standards[code].title[:120].lower()}",
                standard=standards[code],
                subject=GapRule.Subject.EMPLOYEE,
                target=GapRule.Target.EMPLOYEE,
                source=GapRule.Source.FEEDBACK,
                threshold=RULE_THRESHOLD,
                window_days=RULE_WINDOW,
                min_points=RULE_MIN_POINTS,
                lesson=lesson,
                cooldown_days=COOLDOWN,
                due_days=7,
                holdout_share=Decimal(holdout),
            )
            rule.created_at = self.now - dt.timedelta(days=HISTORY_DAYS + 5)
            rules.append((rule, lift))
        GapRule.objects.bulk_create([r for r, _ in rules])
        GapRule.objects.filter(pk__in=[r.pk for r, _ in rules]).update(
            created_at=self.now - dt.timedelta(days=180)
        )
        self.counts["gap rules"] = len(rules)
        if not rules:
            return
        # Every rule standard's answers about employees, once, as points on each scale. Times as
        # epoch seconds: a quarter of a million timestamps would take longer to parse than to read.
        std_ids = [r.standard_id for r, _ in rules]
        scales: dict[int, tuple] = {}
        for std, qtype, smin, smax in (
            Question.objects.filter(standard_id__in=std_ids, type__in=GAP_TYPES)
            .order_by("pk")
            .values_list("standard_id", "type", "scale_min", "scale_max")
        ):
            scales.setdefault(std, (qtype, *gap_scale(qtype, smin, smax)))
        collected = defaultdict(lambda: ([], []))
        with connection.cursor() as cur:
            cur.execute(
                f"""
                SELECT standard_id, employee_id, extract(epoch FROM submitted_at)::float8, number::float8
                  FROM {Answer._meta.db_table}
                 WHERE organization_id = %s AND standard_id = ANY(%s) AND employee_id IS NOT NULL
                   AND number IS NOT NULL AND question_type = ANY(%s)
                 ORDER BY standard_id, employee_id, submitted_at
                """,  # noqa: S608 - the table name is the model's, the values are parameters  # nosec B608
                [self.org.pk, std_ids, list(GAP_TYPES)],
            )
            for std, emp, at, number in cur.fetchall():
                times, values = collected[(std, emp)]
                times.append(at)
                values.append(number)
        points = dict(collected)
        employees = {e.pk: e for e in Employee.objects.filter(active=True)}
        triggers, pending = [], []
        for rule, lift in rules:
            qtype, low, high = scales.get(rule.standard_id, (None, None, None))
            if low is None:
                continue
            eligible = sorted(
                emp
                for (std, emp), (times, _v) in points.items()
                if std == rule.standard_id and emp in employees and len(times) >= 2 * RULE_MIN_POINTS
            )
            self.rng.shuffle(eligible)
            n_holdout = round(len(eligible) * float(rule.holdout_share))
            for i, emp_id in enumerate(eligible):
                times, values = points[(rule.standard_id, emp_id)]
                best = None
                for _ in range(6):
                    at = self.when(HISTORY_DAYS - 10, 50)
                    epoch = at.timestamp()
                    lo = bisect.bisect_left(times, epoch - RULE_WINDOW * 86400)
                    hi = bisect.bisect_left(times, epoch)
                    if hi - lo >= RULE_MIN_POINTS:
                        mean = sum(values[lo:hi]) / (hi - lo)
                        if best is None or mean < best[1]:
                            best = (at, mean, hi - lo)
                if best is None:
                    continue
                at, native, n = best
                score = round((native - low) * 100 / (high - low), 2)
                shown = f"{native * 100:.0f}% yes" if qtype == "fcr" else f"{native:.1f}/{high}"
                evidence = {
                    "window_days": RULE_WINDOW,
                    "since": (at - dt.timedelta(days=RULE_WINDOW)).isoformat(),
                    "source": rule.source,
                    "feedback": {
                        "n": n,
                        "mean": score,
                        "native": shown,
                        "by_type": [
                            {"type": qtype, "n": n, "mean": round(native, 2), "low": low, "high": high}
                        ],
                    },
                    "n": n,
                    "mean": score,
                }
                employee = employees[emp_id]
                holdout = i < n_holdout
                trigger = GapTrigger(
                    organization_id=org_id,
                    rule=rule,
                    standard_id=rule.standard_id,
                    subject=GapRule.Subject.EMPLOYEE,
                    location_id=employee.current_location_id,
                    team_id=employee.current_team_id,
                    employee=employee,
                    score=Decimal(str(score)),
                    points=n,
                    evidence=evidence,
                    outcome=GapTrigger.Outcome.HOLDOUT if holdout else GapTrigger.Outcome.ASSIGNED,
                    holdout_until=at + dt.timedelta(days=COOLDOWN) if holdout else None,
                    created_at=at,
                )
                triggers.append(trigger)
                pending.append((trigger, rule, employee, lift, low, high))
        GapTrigger.objects.bulk_create(triggers)
        for trigger, rule, employee, lift, low, high in pending:
            reason = gaps.reason_text(rule, GapRule.Subject.EMPLOYEE, trigger.evidence)
            lesson = self.lessons[rule.standard.code]
            start = trigger.created_at
            if trigger.outcome == GapTrigger.Outcome.HOLDOUT:
                if trigger.holdout_until < self.now:  # released after the cooldown
                    done = trigger.holdout_until + dt.timedelta(days=self.rng.uniform(0.5, 8))
                    self.add(
                        lesson=lesson,
                        employee=employee,
                        assigned_at=trigger.holdout_until,
                        due_days=7,
                        source=Assignment.Source.RULE,
                        rule=rule,
                        trigger=trigger,
                        reason=reason,
                        completed_at=done if self.rng.random() < 0.85 else None,
                    )
                continue
            r = self.rng.random()
            done = start + dt.timedelta(
                days=self.rng.uniform(0.3, 6.5) if r < 0.8 else self.rng.uniform(7.5, 14)
            )
            a = self.add(
                lesson=lesson,
                employee=employee,
                assigned_at=start,
                due_days=7,
                source=Assignment.Source.RULE,
                rule=rule,
                trigger=trigger,
                reason=reason,
                completed_at=done if r < 0.93 else None,
            )
            if a is not None and a.completed_at is not None and lift:
                self.lifts.append(
                    (
                        rule.standard_id,
                        employee.pk,
                        a.completed_at,
                        a.completed_at + dt.timedelta(days=RULE_WINDOW),
                        round(lift * (high - low), 2),
                        high,
                    )
                )
        self.counts["gap triggers"] = len(triggers)

    def onboarding(self, employees: list) -> None:
        path, steps = self.paths[ONBOARDING]
        for e in employees:
            start = self.when(HISTORY_DAYS, 3)
            done = start + dt.timedelta(days=self.rng.uniform(3, 20))
            self.add(
                path=path,
                employee=e,
                assigned_at=start,
                due_days=21,
                source=Assignment.Source.MANUAL,
                reason=f"{ONBOARDING}: assigned by your trainer.",
                assigned_by_id=self.trainer_id,
                completed_at=done if self.rng.random() < 0.9 else None,
                progress_steps=self.rng.randrange(len(steps)),
            )

    def manual(self, employees: list, count: int) -> None:
        lessons = list(self.lessons.values())
        for _ in range(count):
            e = self.rng.choice(employees)
            lesson = self.rng.choice(lessons)
            start = self.when(HISTORY_DAYS, 0.5)
            by = self.trainer_id if self.rng.random() < 0.6 else self.manager_id
            r = self.rng.random()
            done = start + dt.timedelta(
                days=self.rng.uniform(0.2, 12) if r < 0.8 else self.rng.uniform(14, 30)
            )
            self.add(
                lesson=lesson,
                employee=e,
                assigned_at=start,
                due_days=14,
                source=Assignment.Source.MANUAL,
                reason="Assigned by your trainer."
                if by == self.trainer_id
                else "Assigned by your store manager.",
                assigned_by_id=by,
                completed_at=done if r < 0.9 else None,
            )

    def persona(self) -> None:
        """The employee persona's portal: an onboarding certificate, a gap-triggered lesson with its
        reason, a manual lesson due soon and one overdue."""
        membership = Membership.objects.filter(role=Role.EMPLOYEE, employee__isnull=False).first()
        if membership is None:
            return
        e = Employee.objects.get(pk=membership.employee_id)
        path = self.paths[ONBOARDING][0]
        self.add(
            path=path,
            employee=e,
            assigned_at=self.now - dt.timedelta(days=60),
            due_days=21,
            source=Assignment.Source.MANUAL,
            reason=f"{ONBOARDING}: assigned by your trainer.",
            assigned_by_id=self.trainer_id,
            completed_at=self.now - dt.timedelta(days=48),
        )
        self.add(
            lesson=self.lessons["greet-open-offer"],
            employee=e,
            assigned_at=self.now - dt.timedelta(days=2),
            due_days=7,
            source=Assignment.Source.MANUAL,
            assigned_by_id=self.manager_id,
            reason='Assigned by your store manager: customers mention being asked "Can I help you?".',
        )
        self.add(
            lesson=self.lessons["pk-stock-check"],
            employee=e,
            assigned_at=self.now - dt.timedelta(days=12),
            due_days=9,
            source=Assignment.Source.MANUAL,
            assigned_by_id=self.trainer_id,
            reason="Assigned by your trainer.",
        )

    def shoppers(self) -> None:
        path = self.paths[CERTIFICATION][0]
        latest = {}
        for _shopper_id, user_id, passed in Certification.objects.filter(
            shopper__status=Shopper.Status.APPROVED, shopper__user__isnull=False
        ).values_list("shopper_id", "shopper__user_id", "passed_at"):
            if user_id not in latest or passed > latest[user_id]:
                latest[user_id] = passed
        for user_id, passed in sorted(latest.items()):
            a = self.add(
                path=path,
                user_id=user_id,
                assigned_at=passed - dt.timedelta(days=3),
                due_days=30,
                source=Assignment.Source.CERTIFICATION,
                reason="Certification for the mystery-shopping programmes: "
                "complete every lesson and pass the test.",
                completed_at=passed,
            )
            if a is not None:
                a._learner_name = (
                    Shopper.objects.filter(user_id=user_id).values_list("name", flat=True).first() or ""
                )

    def attempts_for(self, quiz, a: Assignment, at: dt.datetime, out: list) -> None:
        snapshot = self.snapshots[quiz.pk]
        tries = 2 if self.rng.random() < 0.2 else 1
        who = ("e", a.employee_id) if a.employee_id else ("u", a.user_id)
        for t in range(tries):
            self.attempt_numbers[(quiz.pk, who)] += 1
            seed = self.rng.getrandbits(48)
            questions = shuffled(snapshot, seed, randomise=True)
            passed = t == tries - 1
            wrong = None if passed else self.rng.randrange(len(questions))
            answers = {}
            for i, q in enumerate(questions):
                right = [c["key"] for c in q["choices"] if c["correct"]]
                other = [c["key"] for c in q["choices"] if not c["correct"]]
                answers[str(q["question_id"])] = right if i != wrong else other[:1]
            right_n = len(questions) - (0 if passed else 1)
            started = at - dt.timedelta(minutes=(tries - t) * 6)
            out.append(
                QuizAttempt(
                    organization_id=self.org.pk,
                    quiz=quiz,
                    assignment=a,
                    employee_id=a.employee_id,
                    user_id=None if a.employee_id else a.user_id,
                    location_id=a.location_id,
                    number=self.attempt_numbers[(quiz.pk, who)],
                    seed=seed,
                    questions=questions,
                    answers=answers,
                    score=(Decimal(right_n * 100) / len(questions)).quantize(Decimal("0.01")),
                    passed=passed,
                    started_at=started,
                    submitted_at=started + dt.timedelta(minutes=4),
                )
            )

    def write_history(self) -> None:
        Assignment.objects.bulk_create(self.assignments, batch_size=2000)
        completions, attempts, certificates = [], [], []
        steps_of = {p.pk: lessons for p, lessons in self.paths.values()}
        for a in self.assignments:
            if a.status != Assignment.Status.COMPLETED and not a.completed_lesson_ids:
                continue
            if a.lesson_id:
                done = [(a.lesson, a.completed_at)]
            else:
                lessons = [le for le in steps_of[a.path_id] if le.pk in a.completed_lesson_ids]
                end = a.completed_at or self.now - dt.timedelta(hours=1)
                span = (end - a.assigned_at) / (len(lessons) + 1)
                done = [(le, a.assigned_at + span * (i + 1)) for i, le in enumerate(lessons)]
                if a.completed_at is not None:
                    done[-1] = (done[-1][0], a.completed_at)
            for lesson, at in done:
                completions.append(
                    Completion(
                        organization_id=self.org.pk,
                        lesson=lesson,
                        version_id=lesson.current_version_id,
                        assignment=a,
                        employee_id=a.employee_id,
                        user_id=None if a.employee_id else a.user_id,
                        location_id=a.location_id,
                        completed_at=at,
                        on_time=at <= a.due_at,
                    )
                )
                quiz = self.quiz_of.get(lesson.pk)
                if quiz is not None:
                    self.attempts_for(quiz, a, at, attempts)
            if a.path_id and a.status == Assignment.Status.COMPLETED:
                certificates.append(
                    PathCertificate(
                        organization_id=self.org.pk,
                        path_id=a.path_id,
                        assignment=a,
                        employee_id=a.employee_id,
                        user_id=None if a.employee_id else a.user_id,
                        location_id=a.location_id,
                        learner_name=a._learner_name,
                        issued_at=a.completed_at,
                    )
                )
        Completion.objects.bulk_create(completions, batch_size=2000)
        QuizAttempt.objects.bulk_create(attempts, batch_size=1000)
        PathCertificate.objects.bulk_create(certificates)
        by_source = defaultdict(int)
        for a in self.assignments:
            by_source[a.source] += 1
        self.counts.update(
            assignments=len(self.assignments),
            **{f"{k} assignments": v for k, v in sorted(by_source.items())},
            completions=len(completions),
            **{"quiz attempts": len(attempts), "certificates": len(certificates)},
        )

    def lift_after_training(self) -> None:
        """The lessons that work: raise the treated employees' answers on the standard after they
        completed it (one UPDATE for every case)."""
        if not self.lifts:
            return
        cols = list(zip(*self.lifts, strict=True))
        with connection.cursor() as cur:
            cur.execute(
                f"""
                UPDATE {Answer._meta.db_table} AS a
                   SET number = LEAST(a.number + v.delta, v.high)
                  FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::timestamptz[],
                              %s::numeric[], %s::numeric[]) AS v(std, emp, t0, t1, delta, high)
                 WHERE a.organization_id = %s AND a.standard_id = v.std AND a.employee_id = v.emp
                   AND a.submitted_at >= v.t0 AND a.submitted_at < v.t1 AND a.number IS NOT NULL
                """,  # noqa: S608 - the table name is the model's, the values are parameters  # nosec B608
                [
                    list(cols[0]),
                    list(cols[1]),
                    list(cols[2]),
                    list(cols[3]),
                    [Decimal(str(x)) for x in cols[4]],
                    [Decimal(str(x)) for x in cols[5]],
                    self.org.pk,
                ],
            )
            self.counts["answers lifted"] = cur.rowcount

    def run(self) -> dict:
        t0 = time.monotonic()
        standards = {s.code: s for s in Standard.objects.all()}
        if not any(code in standards for code, *_ in LESSONS):
            return {}  # not the retail organization: its standards are not the lessons'
        skills = {s.name: s for s in SkillCategory.objects.all()}
        members = dict(
            Membership.objects.filter(role__in=[Role.TRAINER, Role.STORE_MANAGER])
            .order_by("role", "pk")
            .values_list("role", "user_id")
        )
        self.trainer_id = members.get(Role.TRAINER)
        self.manager_id = members.get(Role.STORE_MANAGER, self.trainer_id)
        self.content(standards, skills)
        self.make_paths()
        self.step("northwind: learning content", t0)
        employees = list(Employee.objects.filter(active=True).order_by("pk"))
        self.persona()
        self.gap_history(standards)
        self.onboarding(employees)
        self.shoppers()
        remaining = scaled(TARGET_ASSIGNMENTS, self.scale) - len(self.assignments)
        if employees and remaining > 0:
            self.manual(employees, remaining)
        self.write_history()
        self.lift_after_training()
        self.step(f"northwind: {len(self.assignments)} learning assignments", t0)
        # The effect figures take longer to compute than the rest of this seed: the analytics task
        # computes them once the seed commits (and hourly), as it would after real data arrived.
        org_id = self.org.pk
        transaction.on_commit(lambda: _effects_later(org_id))
        return self.counts


def _effects_later(org_id: int) -> None:
    from learning.analytics_tasks import lesson_effects_compute

    try:
        lesson_effects_compute.delay(org_id)
    except (KombuOperationalError, ConnectionError, OSError):
        logger.warning("broker unavailable; lesson effects wait for the hourly task")


def seed_learning(org, *, seed: int, scale: float, actor: Actor | None = None, step=None) -> dict:
    """Load the organization's learning demo data (inside its tenant_context); returns counts."""
    return LearningSeeder(org, seed=seed, scale=scale, actor=actor, step=step).run()
